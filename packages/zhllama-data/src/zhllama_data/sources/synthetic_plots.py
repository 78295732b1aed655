"""Story templates of the synthetic generator, written for this project.

A story is: an opening that names the hero (从前/很久很久以前…), zero to two sentences about
the hero, a scene-setting sentence (有一天…), one plot, and an ending that closes it (从那以后…).
A plot is a list of steps; each step is a tuple of alternative templates, and a step whose first
item is a float is optional (kept with that probability). Templates use `str.format` fields:
  A, B          the hero and the friend (names);  Ap, Bp  their pronouns (他/她)
  Ak, Bk        what they are (小兔子, 小女孩…);  Am, Bm  measure words;  Amove, Bmove  manner
  they          他们/她们;  fam  a family member;  home, dest, spot, spot2, spot3, shelter  places
  obj, objm, color, food, food_c, drink, hobby, season, weather, storm, pos, neg, posadv, negadv,
  say, ask, wish, wish_done, fail, advice, trouble, fix, fear, fear_scene, fear_brave, build,
  build_fall, gift, contest, moral, adj, looks
Almost every sentence carries a name or another slot with many values, which keeps any single
sentence rare across the corpus (the tests assert none is more than 1% of all sentences).
"""

from __future__ import annotations

OPENERS = (
    "从前，{home}住着一{Am}{adj}{Ak}，名叫{A}。",
    "很久很久以前，{home}有一{Am}{Ak}，{Ap}的名字叫{A}。",
    "{home}住着一{Am}{adj}{Ak}，大家都叫{Ap}{A}。",
    "从前有一{Am}{Ak}，名叫{A}，{Ap}和{fam}一起住在{home}。",
    "{A}是一{Am}{adj}{Ak}，{Ap}的家在{home}。",
    "在很远很远的{home}，住着一{Am}{Ak}，{Ap}叫{A}。",
    "从前，有一{Am}叫{A}的{Ak}，住在{home}。",
    "很久以前，{home}有一{Am}{adj}{Ak}，{Ap}叫{A}。",
)
TRAITS = (
    "{A}最喜欢{hobby}，一玩就是一整天。",
    "{Ap}{looks}，大家都很喜欢{Ap}。",
    "{A}有一{objm}{color}的{obj}，那是{fam}送给{Ap}的礼物。",
    "{A}最爱吃{food}，每次吃的时候都会眯起眼睛。",
    "每天早上，{A}都会{Amove}去{dest}转一转。",
    "{A}{looks}，{fam}常常夸{Ap}。",
    "{A}每天都和{fam}一起{hobby}。",
)
SCENES = (
    "有一天，{weather}，{A}{Amove}来到了{dest}。",
    "{season}，{weather}，{A}决定去{dest}看看。",
    "一天早上，{A}醒来，{weather}，{Ap}想去{dest}玩。",
    "这一天，{A}和{fam}一起去{dest}。",
    "{season}，{A}{Amove}出了门，要去{dest}。",
    "有一天，{A}{Amove}走在去{dest}的路上。",
)

# For plots where the friend appears without an introduction of their own.
FRIEND = (
    "{A}有一个好朋友，是一{Bm}{Bk}，名叫{B}。",
    "{A}的邻居是一{Bm}{Bk}，叫{B}。",
    "{A}最好的朋友是{Bk}{B}，{they}常常一起{hobby}。",
)

LOST = (
    (
        "{A}带着心爱的{obj}，在{dest}玩了很久。",
        "{A}把{color}的{obj}放在身边，自己去{hobby}了。",
        "{A}拿着{obj}，在{dest}跑来跑去。",
    ),
    (
        "一不小心，{obj}不见了！",
        "突然，一阵风吹过，{Ap}的{obj}不见了。",
        "等{A}回过头来，{obj}已经不见了。",
    ),
    (
        "{A}在{spot}找了找，又到{spot2}找了找，可是什么也没有找到。",
        "{A}{negadv}找来找去，怎么也找不到{obj}。",
    ),
    (0.5, "{A}坐在{spot}，{neg}得快要哭了。", "{A}心里{neg}极了，不知道该怎么办。"),
    (
        "这时，一{Bm}{Bk}{Bmove}走了过来，{Bp}叫{B}。",
        "正在这时，{B}{Bmove}来到了{A}身边。",
        "这时候，{Ap}的好朋友{B}正好路过这里。",
    ),
    ("{B}{ask}：“{A}，你怎么了？”", "“{A}，你为什么这么{neg}呀？”{B}{ask}。"),
    (
        "{A}{negadv}说：“我的{color}{obj}找不到了。”",
        "{A}说：“{B}，我的{obj}不见了，那是{fam}送给我的。”",
    ),
    (
        "{B}拍拍{A}的肩膀说：“别着急，我帮你一起找！”",
        "{B}{say}：“我的眼睛最亮了，我来帮你找{obj}。”",
    ),
    (
        "他们找遍了{spot}和{spot2}。",
        "{B}在前面找，{A}在后面找，{they}一点也不怕累。",
    ),
    (
        "最后，{B}在{spot3}发现了{obj}。",
        "突然，{A}看见{spot3}露出了{obj}的一角。",
        "原来，{obj}被风吹到了{spot3}。",
    ),
    (
        "{A}抱着{obj}，{posadv}说：“谢谢你，{B}！”",
        "{A}{pos}极了，对{B}说：“你真是我的好朋友！”",
    ),
)
WISH = (
    (
        "{A}一直有一个愿望，就是{wish}。",
        "{A}心里有一个小小的梦想：{wish}。",
        "{A}很想{wish}，{Ap}每天都在想这件事。",
    ),
    ("{Ap}试了一次又一次，可是每次都{fail}。", "第一次试的时候，{A}{fail}。"),
    (
        "{A}坐在{spot}，{negadv}叹了一口气。",
        "{A}{neg}地想：“我是不是永远也做不到呢？”",
    ),
    (
        "{B}看见了，{ask}：“{A}，你想做什么呀？”",
        "一{Bm}{Bk}走了过来，{Bp}叫{B}。{B}{ask}：“{A}，你为什么叹气呀？”",
    ),
    ("{A}说：“我想{wish}，可是我做不到。”", "{A}把自己的愿望告诉了{B}。"),
    ("{B}{say}：“{advice}！”", "{B}笑着说：“{A}，{advice}。”"),
    (
        "{B}每天都来陪{A}练习。",
        "从早上到傍晚，{A}一点一点地进步了。",
        "{A}照着{B}说的去做，一次比一次好。",
    ),
    ("终于有一天，{A}{wish_done}！", "在{B}的帮助下，{A}终于{wish_done}。"),
    (
        "{A}{posadv}跳了起来，大声喊：“我做到了！谢谢你，{B}！”",
        "{A}高兴得又唱又跳，{B}也为{Ap}鼓掌。",
    ),
)
HELP = (
    (
        "走着走着，{A}听见{spot}传来呜呜的哭声。{A}走过去一看，原来是一{Bm}{Bk}，名叫{B}。",
        "在{dest}，{A}看见一{Bm}{Bk}一个人坐在{spot}，看起来很{neg}。{Bp}的名字叫{B}。",
        "{A}看见{spot}有一{Bm}{Bk}，{Bp}叫{B}，{Bp}的眼睛红红的。",
    ),
    ("{A}{ask}：“{B}，你怎么了？”", "“{B}，你为什么哭呀？”{A}{ask}。"),
    ("{B}{negadv}说：“{trouble}。”", "{B}抽抽搭搭地说：“{trouble}。”"),
    (
        "{A}说：“{B}，别难过，我来帮你！”",
        "{A}想了想，说：“{B}，我有一个好办法。”",
        "{A}拍拍胸口说：“{B}，包在我身上！”",
    ),
    ("{fix}。",),
    ("{B}{posadv}说：“谢谢你，{A}！你真好！”", "{B}不哭了，{Bp}{posadv}拉着{A}的手说：“谢谢你！”"),
    (0.5, "{A}心里也觉得{pos}极了。", "看到{B}笑了，{A}也笑了。"),
)
SHARE = (
    (
        "出门前，{fam}给了{A}{food_c}{food}。",
        "{A}用自己攒的零花钱买了{food_c}{food}。",
        "{A}帮{fam}干活，{fam}奖励了{Ap}{food_c}{food}。",
    ),
    (
        "{A}{posadv}提着{food}往家走，心里想：“我要一个人慢慢吃。”",
        "{A}一边走，一边想着香甜的{food}。",
    ),
    (
        "路上，{Ap}遇见了{B}，{B}的肚子正咕咕地叫。",
        "走到{spot}，{A}看见{B}饿得没有力气了。",
    ),
    ("{B}{negadv}说：“我从早上到现在都没吃东西，好饿呀。”", "{B}看着{food}，咽了咽口水。"),
    ("{A}想了想，把{food}分了一半给{B}。", "{A}犹豫了一下，还是把最大的{food}递给了{B}。"),
    (
        "{B}吃得香极了，说：“{A}，这是我吃过最好吃的{food}！”",
        "{B}一边吃，一边说：“谢谢你，{A}，你真大方！”",
    ),
    ("{A}发现，和朋友一起吃{food}，比一个人吃更香。", "看着{B}开心的样子，{A}也笑了。"),
    (0.5, "第二天，{B}带来了{drink}，请{A}一起喝。"),
)
FEAR = (
    FRIEND,
    ("{A}什么都好，就是有点害怕{fear}。", "{A}有一件害怕的事，那就是{fear}。"),
    ("{fear_scene}。",),
    (
        "{B}知道了，对{A}说：“{A}，我以前也害怕{fear}。”",
        "{B}笑着说：“{A}，别怕，我陪着你。”",
    ),
    (
        "{B}{say}：“害怕的时候，就想一想你最喜欢的{food}。”",
        "{B}握住了{A}的手，{A}的心里暖暖的。",
    ),
    ("这一次，{fear_brave}。",),
    ("{A}发现，原来{fear}也没有那么可怕。", "{A}{posadv}说：“{B}，我不害怕{fear}了！”"),
)
BUILD = (
    FRIEND,
    ("{A}和{B}决定一起做一个{build}。", "{A}想做一个{build}，就叫来了好朋友{B}。"),
    (
        "他们在{dest}找来了很多材料，忙了整整一个下午。",
        "{A}负责搬东西，{B}负责装饰，{they}配合得很好。",
    ),
    ("{build}终于做好了，看起来漂亮极了。", "没过多久，一个{color}的{build}就做好了。"),
    ("可是，{build_fall}。",),
    ("{A}{negadv}说：“我们白忙了。”", "{B}{neg}得低下了头。"),
    (
        "{A}擦了擦眼睛，说：“{B}，我们再做一个更结实的吧！”",
        "{B}想了想，说：“{A}，我们可以把它做得更结实一点。”",
    ),
    ("这一次，{A}和{B}做得又仔细又认真。", "他们又做了一次，这一次，{A}想出了一个好办法。"),
    ("新的{build}又高又稳，谁也弄不倒了。", "新的{build}比原来的还要漂亮，{A}和{B}都笑了。"),
)
STORM = (
    ("{A}正在{dest}{hobby}，忽然，{storm}。", "{A}刚走到{dest}，{storm}。"),
    ("{A}赶紧跑到{shelter}躲一躲。", "{A}急忙跑到{shelter}，浑身都湿透了。"),
    ("{shelter}已经有一{Bm}{Bk}了，{Bp}叫{B}。", "在{shelter}，{A}遇见了{B}，{Bp}冷得直发抖。"),
    (
        "{B}{say}：“{A}，这样的天气，我们一起躲一会儿吧。”",
        "{A}{ask}：“{B}，你冷不冷？”",
        "{B}小声说：“{A}，我有点害怕。”",
    ),
    (
        "{A}把带着的{food}分给{B}吃。",
        "{A}和{B}靠在一起，就不觉得冷了。",
        "{B}给{A}讲了一个有趣的故事，{A}听得哈哈大笑。",
    ),
    (
        "过了一会儿，雨停了，{A}和{B}看见天上挂着一道彩虹。",
        "不知过了多久，风停了，太阳照在{B}的身上暖洋洋的。",
    ),
    (
        "{A}和{B}手拉着手，一起走出了{shelter}。",
        "{B}{posadv}说：“{A}，和你在一起，坏天气也变得很快乐！”",
    ),
)
LOSTWAY = (
    ("{A}追着一只{color}的蝴蝶，越走越远。", "{A}只顾着{hobby}，不知不觉走到了很远的地方。"),
    (
        "等{Ap}抬起头，才发现天快黑了，四周一个人也没有。",
        "{A}回头一看，来时的路不见了。",
    ),
    ("{A}{neg}地喊：“{fam}，你在哪儿？”", "{A}{neg}极了，忍不住哭了起来。"),
    ("这时，一{Bm}{Bk}{Bmove}过来，{Bp}叫{B}。", "这时候，{B}听到了哭声，赶紧跑了过来。"),
    (
        "{B}{say}：“别怕，我认识回家的路，跟我走吧。”",
        "{B}{say}：“{A}，你家是不是在{home}？我带你回去。”",
    ),
    ("{B}在前面带路，{A}紧紧地跟在后面。", "一路上，{B}给{A}唱歌，{A}就不那么害怕了。"),
    ("远远地，{A}看见{fam}正站在门口等{Ap}。", "走啊走，{A}和{B}终于看见了{A}的家。"),
    (
        "{fam}一把抱住{A}，说：“{A}，我们都很担心你！”",
        "{A}扑进{fam}的怀里，{negadv}说：“我再也不乱跑了。”",
    ),
)
GIFT = (
    FRIEND,
    (
        "明天就是{B}的生日了，{A}想送{Bp}一件礼物。",
        "{A}听说{B}明天过生日，心里想：“我送什么礼物好呢？”",
    ),
    ("可是{A}没有钱买礼物，{Ap}有点{neg}。", "{A}在{dest}转了一圈，也没想好送什么。"),
    ("{fam}说：“{A}，自己动手做的礼物最珍贵。”", "{A}想啊想，忽然想到了一个好主意。"),
    ("{A}做了一个晚上，终于做好了{gift}。", "{A}认认真真地做了{gift}。"),
    ("第二天，{A}把礼物送给了{B}。", "生日那天，{A}捧着礼物来到了{B}的家。"),
    ("{B}{posadv}说：“{A}，这是我收到过最好的礼物！”", "{B}看到礼物，{pos}得说不出话来。"),
    ("他们一起吃了{food}，度过了快乐的一天。", "{B}把{A}送的礼物放在床头，每天都要看一看。"),
)
QUARREL = (
    FRIEND,
    (
        "{A}和{B}在{dest}玩，{they}都想玩那{objm}{color}的{obj}。",
        "{A}和{B}同时看见了一{objm}{obj}，{they}都想先玩。",
    ),
    ("{A}说：“{obj}是我先看到的！”", "{A}拉着{obj}不放手，{B}也拉着不放手。"),
    ("{B}大声说：“{A}，我也想玩！”", "{B}{neg}地说：“{A}，你太小气了！”"),
    ("{A}和{B}吵了起来，谁也不让谁。", "{A}和{B}你一句我一句，吵得脸都红了。"),
    ("这时，{fam}走过来说：“你们可以轮流玩呀。”", "突然，啪的一声，{obj}被拉坏了。"),
    ("{A}和{B}都不说话了，{they}觉得很不好意思。", "{A}低下头说：“{B}，对不起。”"),
    (0.7, "{B}也说：“{A}，我也有不对的地方。”"),
    ("后来，{A}和{B}一人玩一会儿，玩得可开心了。", "{they}一起把{obj}修好了，然后轮流玩。"),
)
CONTEST = (
    FRIEND,
    ("{dest}要举行一场{contest}，{A}很想参加。", "{A}听说{dest}要举行{contest}，决定去试一试。"),
    ("为了{contest}，{A}每天都认真练习。", "{A}每天天不亮就起床，为{contest}做准备。"),
    ("{contest}那天，{A}和{B}都站在了起点上。", "{contest}开始了，{A}和{B}一直在最前面。"),
    ("突然，{B}摔了一跤，{Bp}的腿受伤了。", "比到一半，{B}不小心摔倒了。"),
    ("{A}大声问：“{B}，你没事吧？”", "{B}{negadv}说：“{A}，你别管我，快往前跑吧！”"),
    ("{A}停了下来，把{B}扶了起来。", "{A}没有往前跑，而是回去帮助{B}。"),
    ("最后，{A}没有得第一名。", "最后，{A}和{B}是一起到达终点的。"),
    ("可是大家都为{A}鼓掌，{Ap}心里觉得{pos}极了。", "大家都说，{A}是{contest}里最棒的{Ak}。"),
)

# (plot, morals that fit it); the ending picks from these.
PLOTS = (
    (LOST, (0, 9)),
    (WISH, (2, 8, 11)),
    (HELP, (0, 5, 6)),
    (SHARE, (1, 5)),
    (FEAR, (3, 9)),
    (BUILD, (2, 6, 9)),
    (STORM, (0, 9)),
    (LOSTWAY, (12, 0)),
    (GIFT, (13, 5)),
    (QUARREL, (4, 10)),
    (CONTEST, (5, 7, 0)),
)

CLOSERS = (
    "从那以后，{A}和{B}成了最好的朋友。",
    "从那以后，{A}和{B}常常一起{hobby}。",
    "从那以后，{A}和{B}每天都一起去{dest}玩。",
    "那天晚上，{A}躺在床上，想起今天的事，甜甜地笑了。",
    "那天晚上，{A}做了一个美美的梦，梦里{Ap}和{B}还在一起{hobby}。",
    "回到家，{A}把今天的事讲给{fam}听，{fam}说：“{A}，你真棒！”",
    "{A}觉得，今天是{Ap}最{pos}的一天。",
    "从此以后，{A}和{B}再也没有分开过，{they}是{home}最要好的朋友。",
)
MORAL_LINES = (
    "{A}明白了：{moral}。",
    "{A}懂得了一个道理：{moral}。",
    "{fam}告诉{A}：“{moral}。”",
)
