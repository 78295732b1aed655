//! Scoring: how likely a model finds a token sequence, for evaluation (`zhllama eval` on
//! exported files) and for users comparing texts or models.

use crate::error::{Error, Result};
use crate::model::Model;

/// `log_softmax(logits)[target]`, with the normaliser summed in f64 so that a 32k-entry vocab
/// loses nothing to rounding.
fn log_prob(logits: &[f32], target: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    (f64::from(logits[target] - max) - sum.ln()) as f32
}

impl Model {
    /// The log-probability of each next token of `ids`: element `i` is
    /// `log p(ids[i + 1] | ids[..=i])`, so the result has `ids.len() - 1` entries (none for
    /// fewer than two ids). Start `ids` with BOS (1) to score a text as the model saw its
    /// training data. The sequence runs from position 0, replacing whatever the model was
    /// running. The last id is only predicted, never run, so a training window of `seq_len + 1`
    /// ids fits. Errors on an id outside the vocab or a longer sequence.
    pub fn score(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        if ids.len() > self.seq_len() + 1 {
            return Err(Error::bad_arg(format!(
                "{} ids do not fit the context (seq_len {}): score windows of at most {} ids",
                ids.len(),
                self.seq_len(),
                self.seq_len() + 1
            )));
        }
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.vocab_size()) {
            return Err(Error::bad_arg(format!(
                "token {bad} is outside the vocab (size {})",
                self.vocab_size()
            )));
        }
        let Some((_, inputs)) = ids.split_last() else {
            return Ok(Vec::new());
        };
        let v = self.vocab_size();
        self.reset();
        // one batched pass over the whole window: the same logits, bit for bit, that
        // forward() would give position by position, at matrix-matrix speed
        let logits = self.prefill_each(inputs, 0)?;
        let out = logits
            .chunks_exact(v)
            .zip(&ids[1..])
            .map(|(row, &next)| log_prob(row, next as usize))
            .collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::log_prob;

    #[test]
    fn log_prob_is_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0, -50.0];
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        for (t, &l) in logits.iter().enumerate() {
            let want = (f64::from(l) - z.ln()) as f32;
            assert!((log_prob(&logits, t) - want).abs() < 1e-6, "{t}");
        }
        // a huge logit does not overflow
        assert!((log_prob(&[1000.0, 0.0], 0)).abs() < 1e-6);
    }
}
