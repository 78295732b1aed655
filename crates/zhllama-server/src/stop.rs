//! Stop strings: text is released only once it cannot be the beginning of a stop string, so a
//! client never sees a stop string (or a piece of one) that generation then ends on.

/// Matches stop strings across the text pieces of one generation.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text that ends with a prefix of some stop string: held back until it is decided.
    held: String,
}

/// What [`StopMatcher::push`] decided for a piece.
#[derive(Debug, PartialEq, Eq)]
pub struct Released {
    /// Text safe to send now (whole characters).
    pub text: String,
    /// A stop string was found: `text` ends just before it and generation ends.
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored; validation rejects them earlier).
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds `piece` and returns what can be released.
    pub fn push(&mut self, piece: &str) -> Released {
        self.held.push_str(piece);
        // The earliest match of any stop string wins.
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let text = self.held[..at].to_string();
            self.held.clear();
            return Released {
                text,
                stopped: true,
            };
        }
        // Keep the longest suffix that is a prefix of a stop string; release the rest.
        let keep_from = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let text = self.held[..keep_from].to_string();
        self.held.drain(..keep_from);
        Released {
            text,
            stopped: false,
        }
    }

    /// The end of generation: whatever is still held back is text after all.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let r = m.push(p);
            out.push_str(&r.text);
            if r.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn no_stops_releases_everything_at_once() {
        let mut m = StopMatcher::new(vec![]);
        assert_eq!(m.push("小猫").text, "小猫");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn a_stop_split_across_pieces_is_caught_and_not_sent() {
        assert_eq!(
            run(&["。他"], &["小猫", "跑了", "。", "他", "笑"]),
            ("小猫跑了".into(), true)
        );
    }

    #[test]
    fn a_prefix_that_does_not_complete_is_released() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("abE").text, "ab");
        assert_eq!(m.push("N").text, "");
        assert_eq!(m.push("x").text, "ENx");
        assert_eq!(run(&["END"], &["abE", "N"]), ("abEN".into(), false));
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        assert_eq!(
            run(&["狗", "猫"], &["一只猫和一只狗"]),
            ("一只".into(), true)
        );
        assert_eq!(run(&["bc", "abcd"], &["xab", "cd"]), ("x".into(), true));
    }

    #[test]
    fn held_text_is_cut_on_character_boundaries() {
        let mut m = StopMatcher::new(vec!["猫猫".into()]);
        let r = m.push("小猫");
        assert_eq!(r.text, "小");
        assert_eq!(m.finish(), "猫");
    }

    #[test]
    fn empty_stop_strings_are_ignored() {
        assert_eq!(run(&[""], &["abc"]), ("abc".into(), false));
    }
}
