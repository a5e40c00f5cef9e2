"""The pieces of a claim in Chinese answers and passages, read into the same values as
``bot.generation.claims`` reads English: prices (``Decimal``), durations
(``DurationSpan`` with the English unit names: "7个工作日" is (7, 7, "business day"),
"两周" (2, 2, "week"), "半个月" (0.5, 0.5, "month")), counts (``Count`` whose word is the
English noun: "4种颜色" counts "colors"), order states (English names: "已发货" is
"shipped"), negation, opening replies and clauses. The fact guard compares these values
with the same rules whichever language read them, so "30天" in an answer is supported by
"30 days" in an English passage and the other way round.

Numbers come from ``bot.lang`` (``parse_chinese_number`` and the zh finders); an answer's
Chinese numeral is a claim only when it is one ("三十", "两件"), not inside words such as
"一下", "十分" or "万一". The catalog's names are English: ``latin_view`` keeps the Latin
words of a Chinese sentence (with colour words given their English names), which the
guard's English product, option and name checks read. Pure functions, thread-safe.
"""

from __future__ import annotations

import re
from decimal import Decimal

from bot.generation.claims import CLOCK, Count, DurationSpan, to_decimal
from bot.lang import find_durations, find_prices, fold_width, parse_chinese_number
from bot.lang.numbers import NUMBER as ZH_NUMBER
from bot.lang.option_words import COLOUR_WORDS
from bot.lang.script import HAN

_UNITS = {
    "day": "day",
    "business_day": "business day",
    "week": "week",
    "month": "month",
    "year": "year",
    "hour": "hour",
    "minute": "minute",
}
_NUMERAL = re.compile(ZH_NUMBER)
_ARABIC = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:\.\d+)?")
# numeral characters inside ordinary words: "一下", "十分抱歉", "千万", "万一", "一些"
_NOT_A_NUMBER = re.compile(
    r"一(?=[下些起般直定样切共旦边点定再同致律概向贯])|(?<=[统唯第逐万])一|十分|千万|万一|三星|九成新"
)


def blank(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span replaced by spaces of its length (spans stay valid)."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


# ------------------------------------------------------------------------------- prices

#: Foreign currencies written in Chinese after the amount: "99美元" is not yuan.
_FOREIGN = {"美元": "USD", "美金": "USD", "欧元": "EUR", "英镑": "GBP", "日元": "JPY"}
_FOREIGN_PRICE = re.compile(
    rf"(?P<n>{ZH_NUMBER})\s?(?P<c>" + "|".join(_FOREIGN) + r"|港币|港元|刀)"
)


def prices_in(text: str) -> list[tuple[str, Decimal, str]]:
    """Prices a Chinese text states: (as written, amount, ISO currency). ¥/元/块/RMB/CNY
    are yuan ("¥99", "九十九元", "三块五", "1,299元"), "99美元" dollars."""
    text = fold_width(text)
    out = [
        (text[p.start : p.end], p.amount.quantize(Decimal("0.01")), p.currency)
        for p in find_prices(text)
    ]
    for m in _FOREIGN_PRICE.finditer(text):
        amount = parse_chinese_number(m.group("n"))
        if amount is not None:
            code = _FOREIGN.get(m.group("c"), "HKD" if m.group("c") != "刀" else "USD")
            out.append((m.group(0), amount.quantize(Decimal("0.01")), code))
    return out


def price_spans(text: str) -> list[tuple[int, int]]:
    text = fold_width(text)
    return [(p.start, p.end) for p in find_prices(text)] + [
        m.span() for m in _FOREIGN_PRICE.finditer(text)
    ]


def price_fits(currency_of_claim: str, store_currency: str) -> bool:
    """Whether a price read as ``currency_of_claim`` may be the store's: "¥" is yuan or
    yen."""
    return currency_of_claim == store_currency or (
        currency_of_claim == "CNY" and store_currency == "JPY"
    )


# ---------------------------------------------------------------------------- durations


def duration_spans(text: str, *, with_text: bool = False) -> set[DurationSpan]:
    """Every duration a Chinese text states, ranges whole ("3-5天" is (3, 5, "day"))."""
    text = fold_width(text)
    out: set[DurationSpan] = set()
    for d in find_durations(text):
        high = d.upto if d.upto is not None else d.amount
        words = text[d.start : d.end] if with_text else ""
        out.add(DurationSpan(d.amount.normalize(), high.normalize(), _UNITS[d.unit], words))
    return out


def duration_ranges(text: str) -> list[tuple[int, int]]:
    return [(d.start, d.end) for d in find_durations(fold_width(text))]


# ------------------------------------------------------------------------------ numbers


def numbers_claimed(text: str) -> list[tuple[str, Decimal, tuple[int, int]]]:
    """The Chinese numerals an answer claims ("三十", "两", "3万"; Arabic digits alone are
    left to the English reader), not the ones inside words ("一下", "十分"), nor a lone
    "一" ("一个问题": "a")."""
    text = _NOT_A_NUMBER.sub(lambda m: " " * len(m.group(0)), fold_width(text))
    out: list[tuple[str, Decimal, tuple[int, int]]] = []
    for m in _NUMERAL.finditer(text):
        word = m.group(0)
        if word.replace(",", "").replace(".", "").isdigit():
            continue
        value = parse_chinese_number(word)
        if value is None or (value == 1 and not any(c.isdigit() for c in word)):
            continue
        out.append((word, value.normalize(), m.span()))
    return out


def numbers_in(text: str) -> set[Decimal]:
    """Every number a (Chinese) source text states, digits and numerals."""
    text = fold_width(text)
    out = {v for m in _ARABIC.finditer(text) if (v := to_decimal(m.group(0))) is not None}
    out |= {v for m in _NUMERAL.finditer(text) if (v := parse_chinese_number(m.group(0)))}
    out |= {p.amount for p in find_prices(text)}
    for d in find_durations(text):
        out |= {d.amount} | ({d.upto} if d.upto is not None else set())
    return {v.normalize() for v in out}


_PERCENT = re.compile(rf"百分之(?P<a>{ZH_NUMBER})|(?P<b>\d+(?:\.\d+)?)\s?[%％]")


def percents_in(text: str) -> list[tuple[str, Decimal | None, tuple[int, int]]]:
    out = []
    for m in _PERCENT.finditer(fold_width(text)):
        raw = m.group("a") or m.group("b")
        value = parse_chinese_number(raw)
        out.append((m.group(0), value.normalize() if value is not None else None, m.span()))
    return out


_ZH_CLOCK = re.compile(
    rf"(?P<day>上午|早上|中午|下午|晚上|傍晚)?(?P<h>{ZH_NUMBER})[点點](?:(?P<half>半)|(?P<m>{ZH_NUMBER})分?)?"
)


def clocks_in(text: str) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """Times of day: "下午6点", "晚上八点半", "18:00" -> (as written, (hour, minute), span)."""
    text = fold_width(text)
    out: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
    for m in _ZH_CLOCK.finditer(text):
        hour = parse_chinese_number(m.group("h"))
        minute = parse_chinese_number(m.group("m")) if m.group("m") else Decimal(0)
        if hour is None or minute is None or hour > 24:
            continue
        h = int(hour) + (12 if m.group("day") in ("下午", "晚上", "傍晚") and hour < 12 else 0)
        out.append((m.group(0), (h, 30 if m.group("half") else int(minute)), m.span()))
    for m in CLOCK.finditer(text):
        hh, mm = (int(x) for x in m.group(0).split(":"))
        out.append((m.group(0), (hh, mm), m.span()))
    return out


# ------------------------------------------------------------------------------- counts

#: What a Chinese count counts, as the English noun the guard's count rule knows.
_COUNT_NOUNS = {
    "颜色": "colors", "配色": "colors", "色": "colors", "尺码": "sizes", "尺寸": "sizes",
    "码": "sizes", "款式": "styles", "样式": "styles", "版本": "versions", "型号": "models",
    "配置": "configurations", "规格": "variants", "材质": "materials", "口味": "flavors",
    "选择": "options", "选项": "options", "款": "versions",
}  # fmt: skip
_COUNT = re.compile(
    rf"(?<![\d.,第])(?P<n>{ZH_NUMBER})\s?(?:(?:种|个|款)\s?(?P<noun>"
    + "|".join(sorted(_COUNT_NOUNS, key=len, reverse=True))
    + ")|(?P<word>"
    + "|".join(sorted((n for n in _COUNT_NOUNS if len(n) > 1), key=len, reverse=True))
    + "))"
)  # "43码" is a size: a one-character noun counts only after 种/个/款 ("3个码")


def counts_in(text: str) -> list[Count]:
    """Counts of a product's variants or option values: "4种颜色", "三个尺码", "5款"."""
    out = []
    for m in _COUNT.finditer(fold_width(text)):
        value = parse_chinese_number(m.group("n"))
        if value is not None and value == value.to_integral_value() and value > 0:
            noun = m.group("noun") or m.group("word")
            out.append(Count(value, (_COUNT_NOUNS[noun],), m.group(0)))
    return out


# ------------------------------------------------------------------------- order states

_STATES = {
    "待处理": "pending", "待付款": "pending", "待发货": "pending", "未发货": "pending",
    "处理中": "processing", "已处理": "processed", "已发货": "shipped", "发货后": "shipped",
    "已发出": "shipped", "已寄出": "shipped", "运输中": "in transit", "配送中": "in transit",
    "已送达": "delivered", "已签收": "delivered", "签收后": "delivered", "已收货": "delivered",
    "收货后": "delivered", "送达后": "delivered", "已取消": "cancelled", "已暂停": "on hold",
    "签收之日": "delivered", "收货之日": "delivered", "签收日": "delivered", "收到商品": "delivered",
    "收到货": "delivered", "送达之日": "delivered", "发货之后": "shipped", "签收之后": "delivered",
    "收货之后": "delivered", "还没发货": "pending", "尚未发货": "pending", "没有发货": "pending",
    "一旦发货": "shipped", "发货以后": "shipped", "发出后": "shipped", "寄出后": "shipped",
    "已经发货": "shipped", "已经发出": "shipped", "已经寄出": "shipped", "已经签收": "delivered",
    "已经送达": "delivered", "已经取消": "cancelled",
}  # fmt: skip
_STATE = re.compile("|".join(sorted(_STATES, key=len, reverse=True)))


def states_in(text: str) -> set[str]:
    """The order states a Chinese text names, by their English names."""
    return {_STATES[m.group(0)] for m in _STATE.finditer(text)}


def name_states(text: str) -> str:
    """``text`` with each order state written by its English name ("已发货的订单" ->
    " shipped 的订单"), so that a state is one term, not its verb: "待发货" and "发货后"
    both hold "发货" but are two states."""
    return _STATE.sub(lambda m: f" {_STATES[m.group(0)]} ", text)


_NUMERAL_TERM = re.compile(f"(?:{ZH_NUMBER})个?[月天年周日件双种款次个]?")


def is_numeral(term: str) -> bool:
    """Whether a segmented term is a number, alone or with its measure word ("四十八",
    "六个月", "两种"): the guard checks numbers and durations on their own."""
    return _NUMERAL_TERM.fullmatch(term) is not None


#: "发货前", "签收之前": a claim about the time before a state.
BEFORE_STATE = re.compile(r"(?:发货|发出|寄出|出库|签收|送达|收货)(?:之)?前")

# ----------------------------------------------------------------- replies and negation

NEGATION = re.compile(
    r"(?<![要])不(?!过|论|管|错|少|仅|但|久|同|断|超过)|没有?(?!关系)|无法|无(?!论|理由)|未(?!来)"
    r"|别|勿|禁止|不得|谢绝|拒绝"
)
_REPLY = re.compile(
    r"^[\W_]*(?:(是的|是|对的|对|可以的|可以|支持的|没问题|当然可以|当然|有的|能)"
    r"|((?:目前|暂时|现在|暂)?(?:不可以|不能|不行|不支持)|不是|没有|抱歉，?不|很抱歉，?不|不))"
    r"(?=[，,。！!；;：:]|$)"
)


def reply_polarity(sentence: str) -> bool | None:
    """True for an answer opening with a yes ("是的，", "可以，"), False with a no
    ("不可以，", "不行。", "目前不能。"), None otherwise."""
    m = _REPLY.search(sentence.strip())
    if m is None:
        return None
    return m.group(1) is not None


def without_reply(sentence: str) -> str:
    m = _REPLY.search(sentence.strip())
    if m is None:
        return sentence
    return sentence.strip()[m.end() :].lstrip("，,。！!；;：: ")


def negated(text: str) -> bool:
    """Whether a Chinese clause says no (不/没/无法/未/禁止...), its opening reply aside."""
    return NEGATION.search(without_reply(text)) is not None


#: Where a Chinese sentence's clauses part: its commas and semicolons, "但是"/"不过".
CLAUSES = re.compile(r"[，,；;：:]|(?:但是|但|不过|然而|否则)(?=[{HAN}])".replace("{HAN}", HAN))
#: Where a Chinese source sentence's statements part.
STATEMENTS = re.compile(r"[；;]")


def clauses(sentence: str) -> list[str]:
    return [c.strip() for c in CLAUSES.split(sentence) if c and c.strip()]


# --------------------------------------------------------------------------- stock

STOCK_OUT = re.compile(r"缺货|无货|没货|没有货|售罄|卖完|断货|已售完|暂时没有|暂无库存|没有库存")
STOCK_IN = re.compile(r"有货|有现货|现货充足|有库存|库存充足|在售")
ALL_IN_STOCK = re.compile(r"(?:都|全部|全都|均)(?:有货|有现货|有库存)")

# ------------------------------------------------------------------------- enumerations

_ENUM_SPLIT = re.compile(r"[、]|(?:以及|和|及|或者|或|与)")
_ENUM = re.compile(rf"[{HAN}A-Za-z0-9 \-]+(?:、[{HAN}A-Za-z0-9 \-]+)+")


def enumerations(text: str, max_chars: int = 8) -> list[list[str]]:
    """The items of each "甲、乙和丙" enumeration (at least three items) in ``text``."""
    out = []
    for m in _ENUM.finditer(text):
        items = [i.strip() for i in _ENUM_SPLIT.split(m.group(0)) if i.strip()]
        if len(items) >= 3 and all(len(i) <= max_chars for i in items[1:]):
            out.append(items[1:] if len(items[0]) > max_chars else items)
    return out


# --------------------------------------------------------------------------- Latin view

_COLOUR = re.compile("|".join(sorted(COLOUR_WORDS, key=len, reverse=True)))
_HAN_RUN = re.compile(f"[{HAN}，。！？；：、（）【】“”‘’《》]+")


def english_colours(text: str) -> str:
    """``text`` with Chinese colour words in English ("蓝色" -> " blue ")."""
    return _COLOUR.sub(lambda m: f" {COLOUR_WORDS[m.group(0)]} ", fold_width(text))


def colours_in(text: str) -> list[str]:
    """The colours a Chinese text names, in English ("蓝色" -> "blue")."""
    return [COLOUR_WORDS[m.group(0)] for m in _COLOUR.finditer(text)]


_OPTION_WORDS = {
    "颜色": "color", "配色": "color", "尺码": "size", "尺寸": "size", "码数": "size",
    "容量": "capacity", "材质": "material", "款式": "style",
}  # fmt: skip
_OPTION_WORD = re.compile("|".join(_OPTION_WORDS))


def english_words(text: str) -> str:
    """``text`` with colour and option words in English, as the catalog names them."""
    return _OPTION_WORD.sub(lambda m: f" {_OPTION_WORDS[m.group(0)]} ", english_colours(text))


def latin_view(text: str) -> str:
    """The Latin words of a Chinese sentence, colour words in English and each Han run a
    sentence break: "蓝色M码的T-Shirt有货吗" -> " blue. M. T-Shirt. ". The catalog's names are
    English; the guard's product, option and name checks read this."""
    return _HAN_RUN.sub(" . ", english_colours(text))


# --------------------------------------------------------------------------- vocabulary

#: Chinese words that make a sentence a policy claim (``terms`` reads them).
POLICY_WORDS = (
    "退货 退款 退换 换货 发货 配送 快递 物流 运费 邮费 包邮 运单 取消 订单 修改 支付 付款 "
    "收货 签收 地址 保修 质保 政策 手续费 发票 客服 营业 工作时间 海外 国际 售后 退回 寄回 "
    "补发 赔偿 优惠券 优惠 折扣 免费 礼品卡 积分 保价 预售 货到付款 到账 原路"
)
#: Chinese words that commit the store to something.
COMMITMENT_WORDS = (
    "优惠 优惠券 折扣 打折 免费 包邮 赔偿 补偿 保证 承诺 保修 质保 返现 返利 赠品 赠送 "
    "积分 礼品卡 代金券 红包 减免 免运费 报销 补贴 满减"
)
#: Chinese words that say nothing about the store.
FILLER_WORDS = (
    "您好 你好 请 您 我们 我 可以 能 帮 帮助 帮您 问题 谢谢 感谢 欢迎 咨询 随时 其他 "
    "需要 抱歉 很 非常 当然 是的 好的 一下 哦 呢 吧 啊 这款 这个 这件 那款 商品 产品 "
    "东西 一般 通常 目前 现在 已经 还 也 都 只 就 会 要 可 有 没有 不 没 选择 购买 下单 "
    "如果 需要 您的 我们的 提供 根据 信息 亲 哈 呀 嗯 种 款 件 个 双 码 号 色 还有 目前 "
    "的话 所以 这个 那个 分别 一般 把 给 并 将 "
    # duration words: the duration rule checks them with their numbers
    "天 天内 小时 工作日 工作 个月 月 周 年 内 以内 之内"
)
#: Chinese words around a price ("售价九十九元"): the price check reads them.
PRICE_WORDS = "元 块 块钱 售价 价格 价钱 人民币 多少钱 钱 单价 原价 现价"
#: Chinese words that name the same thing in policy text.
SYNONYM_WORDS = (
    "修改 更改 变更 更换 改",
    "收货 签收 收到 送达",
    "发货 寄出 发出 出库",
    "退款 退钱 返还",
    "运费 邮费 快递费 配送费",
    "取消 撤销",
    "联系 咨询",
    "天内 以内 之内 内",
    "申请 提交 发起",
)
