"""The shared pool of people: Faker word lists, then every person's name, phone, e-mail, ID and company."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from dashboard.demo.clock import Clock
from dashboard.demo.common import I64, NEVER, Bool, concat, ids, lookup, nulls, pick, rng_for
from dashboard.demo.tables import CITY, CITY_AREA, CITY_REGION, CITY_W, REGIONS, SIMILAR

# industry, word used in company names, weight
_INDUSTRIES: tuple[tuple[str, str, int], ...] = (
    ("酒店", "酒店管理", 18),
    ("房地产", "置业", 16),
    ("建筑装饰", "装饰工程", 14),
    ("物业管理", "物业服务", 12),
    ("制造业", "智能制造", 10),
    ("零售", "商贸", 8),
    ("教育", "教育科技", 6),
    ("医疗", "医疗器械", 5),
    ("互联网", "网络科技", 6),
    ("金融", "投资", 5),
)
_COMPANY_SUFFIX = ("有限公司", "有限公司", "有限公司", "股份有限公司", "集团有限公司")
_TITLES = ("总经理", "采购经理", "工程部经理", "项目经理", "行政主管", "IT主管", "总监", "店长", "设计师")
_MOBILE_PREFIX = np.array(
    [
        *range(130, 140),
        *(150, 151, 152, 153, 155, 156, 157, 158, 159, 166, 173, 175, 176, 177, 178),
        *range(180, 190),
        *(191, 198, 199),
    ],
    dtype=np.int64,
)
_MAIL_DOMAINS = ("163.com", "126.com", "sina.com", "foxmail.com", "139.com", "yeah.net", "hotmail.com", "aliyun.com")
# share of B2B contacts among base customers, lead prospects, anonymous fans, anonymous callers
_B2B_SHARE = np.array([0.25, 0.55, 0.0, 0.10])


@dataclass(frozen=True)
class Words:
    """Small word pools filled by Faker (zh_CN), which numpy then samples."""

    surnames: list[str]
    given: list[str]
    name_chars: list[str]
    users: list[str]
    brands: list[str]
    domains: list[str]
    reps: list[str]  # the sales reps


@dataclass(frozen=True)
class People:
    """Every person of the demo world, one element per person in each array."""

    m: int  # persons
    nb: int  # base customers (block 0): customers without a lead in the window
    nf: int  # prospects (block 1): persons that a lead brings in
    nl: int  # leads
    block: I64  # 0 base customer, 1 prospect, 2 anonymous WeChat fan, 3 caller known only by number
    id: pl.Series
    b2b: Bool
    name: pl.Series
    phone: I64
    zero_prefix: Bool  # the PBX shows these callers with a leading 0
    city: I64
    region: I64
    owner: I64  # index of the sales rep
    birth: I64  # day
    id_number: pl.Series
    gender: npt.NDArray[np.str_]
    email: pl.Series
    company: pl.Series
    company_short: pl.Series
    industry: pl.Series
    title: pl.Series
    since: I64  # base customers: customer since (seconds); everybody else NEVER


def make_words(seed: int, n: int) -> Words:
    from faker import Faker
    from faker.providers.company.zh_CN import Provider as CompanyProvider
    from faker.providers.person.zh_CN import Provider as PersonProvider

    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    surnames = [fake.last_name() for _ in range(3000)]  # keeps Faker's frequencies
    given = [fake.first_name() for _ in range(2000)]
    chars = sorted({c for name in PersonProvider.first_names for c in name} | set(SIMILAR))
    rng = rng_for(seed, "pools")
    one = rng.choice(chars, size=600)
    two = np.char.add(rng.choice(chars, size=1400), rng.choice(chars, size=1400))
    users = sorted({fake.user_name() for _ in range(3000)})
    brands = sorted(
        {p for p in CompanyProvider.company_prefixes if 2 <= len(p) <= 4 and p.isalpha() and not p.isascii()}
    )
    domains = sorted({w for w in (fake.domain_word() for _ in range(800)) if w.isalpha() and w.isascii()})
    reps = [fake.name() for _ in range(max(12, min(300, n // 150)))]
    return Words(surnames, given + one.tolist() + two.tolist(), chars, users, brands, domains, reps)


def make_people(rng: np.random.Generator, n: int, clock: Clock, words: Words) -> People:
    nb = round(n * 0.955)  # customers that exist without a lead in the window
    nl = round(n * 1.2)  # leads
    nf = round(nl * 0.8)  # leads that bring a new person
    na_fans = round(n * 0.1)  # anonymous WeChat fans
    na_call = round(n * 0.04)  # callers known only to the call center
    m = nb + nf + na_fans + na_call
    block = np.repeat(np.arange(4), [nb, nf, na_fans, na_call]).astype(np.int64)
    b2b = rng.random(m) < _B2B_SHARE[block]
    sur = rng.integers(0, len(words.surnames), m)
    giv = rng.integers(0, len(words.given), m)
    name = concat(lookup(words.surnames, sur), lookup(words.given, giv))
    phone, zero_prefix = _mobiles(rng, m)
    city = pick(rng, m, CITY_W)
    owner = _owners(rng, CITY_REGION[city], len(words.reps))
    birth, id_number, gender = _id_cards(rng, clock.today, b2b, city)
    email = _emails(rng, b2b, words)
    company, company_short, industry, city = _companies(rng, b2b, city, words)
    title = lookup(_TITLES, rng.integers(0, len(_TITLES), m))
    since = _base_since(rng, clock, block)
    return People(
        m=m,
        nb=nb,
        nf=nf,
        nl=nl,
        block=block,
        id=ids("P", m, 7),
        b2b=b2b,
        name=name,
        phone=phone,
        zero_prefix=zero_prefix,
        city=city,
        region=CITY_REGION[city],
        owner=owner,
        birth=birth,
        id_number=id_number,
        gender=gender,
        email=email,
        company=company,
        company_short=company_short,
        industry=industry,
        title=title,
        since=since,
    )


def _mobiles(rng: np.random.Generator, m: int) -> tuple[I64, Bool]:
    """Distinct mobile numbers, and who the PBX shows with a leading 0."""
    raw = _MOBILE_PREFIX[rng.integers(0, _MOBILE_PREFIX.size, m + m // 20 + 100)] * 100_000_000 + rng.integers(
        0, 100_000_000, m + m // 20 + 100
    )
    _, first = np.unique(raw, return_index=True)
    return raw[np.sort(first)[:m]], rng.random(m) < 0.25


def _owners(rng: np.random.Generator, region: I64, nreps: int) -> I64:
    """Sales reps: rep r covers region r % 7; a person's owner is a rep of their region."""
    nreg = len(REGIONS)
    per_region = (nreps - np.arange(nreg) + nreg - 1) // nreg
    out: I64 = region + nreg * (rng.integers(0, 1 << 30, region.size) % per_region[region])
    return out


def _id_cards(
    rng: np.random.Generator, today: int, b2b: Bool, city: I64
) -> tuple[I64, pl.Series, npt.NDArray[np.str_]]:
    """Birth day, 18-digit resident ID number (with its check digit) and gender."""
    m = b2b.size
    age = np.where(b2b, rng.integers(24, 60, m), rng.integers(19, 68, m))
    birth = today - age * 365 - rng.integers(0, 365, m)
    seq = rng.integers(0, 1000, m)
    body = (
        CITY_AREA[city] * 100_000_000_000
        + pl.Series(birth).cast(pl.Int32).cast(pl.Date).dt.strftime("%Y%m%d").cast(pl.Int64).to_numpy() * 1000
        + seq
    )
    digits = (body[:, None] // (10 ** np.arange(16, -1, -1, dtype=np.int64))) % 10
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
    check = (digits * weights).sum(axis=1) % 11
    id_number = concat(pl.Series(body).cast(pl.String), lookup(list("10X98765432"), check))
    return birth, id_number, np.where(seq % 2 == 1, "男", "女")


def _emails(rng: np.random.Generator, b2b: Bool, words: Words) -> pl.Series:
    """One distinct mailbox per person: QQ, a personal mailbox or (B2B only) a work mailbox."""
    m = b2b.size
    kind = pick(rng, m, [0.35, 0.45, 0.20])  # qq / personal mailbox / work mailbox
    kind = np.where((kind == 2) & ~b2b, 1, kind)
    user = concat(
        lookup(words.users, rng.integers(0, len(words.users), m)),
        pl.Series(rng.integers(0, 100_000, m)).cast(pl.String),
    )
    qq = pl.Series(rng.integers(100_000, 3_000_000_000, m)).cast(pl.String)
    dom = lookup(_MAIL_DOMAINS, rng.integers(0, len(_MAIL_DOMAINS), m))
    work = concat(lookup(words.domains, rng.integers(0, len(words.domains), m)), ".com.cn")
    email = pl.DataFrame({"k": kind, "u": user, "q": qq, "d": dom, "w": work}).select(
        pl.when(pl.col("k") == 0)
        .then(pl.concat_str([pl.col("q"), pl.lit("@qq.com")]))
        .when(pl.col("k") == 1)
        .then(pl.concat_str([pl.col("u"), pl.lit("@"), pl.col("d")]))
        .otherwise(pl.concat_str([pl.col("u"), pl.lit("@"), pl.col("w")]))
        .alias("e")
    )["e"]
    dup = email.is_duplicated() & ~email.is_first_distinct()
    return pl.DataFrame({"e": email, "d": dup, "i": np.arange(m)}).select(
        pl.when(pl.col("d"))
        .then(pl.concat_str([pl.lit("u"), pl.col("i").cast(pl.String), pl.lit("@163.com")]))
        .otherwise(pl.col("e"))
        .alias("e")
    )["e"]


def _companies(
    rng: np.random.Generator, b2b: Bool, city: I64, words: Words
) -> tuple[pl.Series, pl.Series, pl.Series, I64]:
    """A pool of ~1 company per 3 B2B contacts, "<city><brand><industry word><suffix>".

    Returns each person's company (full and without the city), its industry, and the person's
    city: a B2B contact works where the company is.
    """
    m = b2b.size
    nco = max(50, int(b2b.sum()) // 3)
    co_city = pick(rng, nco, CITY_W)
    co_ind = pick(rng, nco, [w for *_, w in _INDUSTRIES])
    core = concat(
        lookup(words.brands, rng.integers(0, len(words.brands), nco)),
        lookup([w for _, w, _ in _INDUSTRIES], co_ind),
        lookup(_COMPANY_SUFFIX, rng.integers(0, len(_COMPANY_SUFFIX), nco)),
    )
    full = concat(lookup(CITY, co_city), core)
    company = np.where(b2b, rng.integers(0, nco, m), -1)
    has = company >= 0
    safe = np.maximum(company, 0)
    industry = nulls(lookup([i for i, *_ in _INDUSTRIES], co_ind[safe]), ~has)
    return nulls(full.gather(safe), ~has), nulls(core.gather(safe), ~has), industry, np.where(has, co_city[safe], city)


def _base_since(rng: np.random.Generator, clock: Clock, block: I64) -> I64:
    """Base customers: since when (55 % from before the window); NEVER for everybody else."""
    m = block.size
    since_day = np.where(
        rng.random(m) < 0.55,
        rng.integers(clock.today - 6 * 365, clock.start, m),
        rng.integers(clock.start, clock.today + 1, m),
    )
    out: I64 = np.where(block == 0, clock.ts(rng, since_day, "office"), NEVER)
    return out
