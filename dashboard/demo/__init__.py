"""A seeded, deterministic generator of a believable Chinese B2B/B2C company's CRM data.

The company (smart locks, smart-home systems and hotel room control) sells to businesses through
sales reps and trade shows, and to consumers through stores and the web. Nine raw sources are
written under ``<data_dir>/raw/demo/<source>/`` the way each real system exports them:

- ``crm``: crm_leads.csv, crm_accounts.csv, crm_activities.csv and crm_lead_stage_history.csv
  (the funnel history of every lead of every source), UTF-8 CSV with Chinese headers.
- ``erp``: kna1_customers / vbak_orders / contracts .parquet, an SAP-style nightly extract.
- ``web_forms``: form_submissions.jsonl, an API export (form 官网 / H5 / 小程序).
- ``wechat``: fans.json and events_0001.json ..., JSON arrays (official account and WeCom).
- ``call_center``: calls_<yyyymm>.csv, ``;``-separated; callers are known by their number.
- ``pos``: members.csv and sales.csv, UTF-8 with BOM.
- ``purchased_leads``: purchased_leads.xlsx, the import date partly as bare Excel serials.
- ``trade_show``: <yyyy-mm>_<show>.csv, saved by Excel: GBK, CRLF, dates like 2024/3/5 14:02.
- ``marketing``: spend_daily.csv, spend per channel, campaign and day (dates like 2024年3月5日).

The dirt is deliberate: the same person in several systems with differently written phones,
name typos and email case; missing optional fields; a few exact duplicate rows; some invalid
phones and emails; channel and stage labels written several ways; a cohort of customers whose
orders and interactions thin out, then stop. ``cockpit.toml`` maps every file.

Ground truth: ``<data_dir>/demo_truth/identity.csv`` (``source_system, source_record_id,
person_id``) for every customer record and every lead (by lead id) in every source, plus the
numbers the call center uses as ``customer_ref`` (they become customers).

Everything is vectorized (numpy + polars); Faker (zh_CN) only fills small pools of names and
words, which numpy then samples. The same (size, seed, as_of) gives byte-identical files.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from dashboard.core.errors import ConfigError

__all__ = ["SIZES", "DemoResult", "generate"]

# size → number of customers (real people with at least one customer record, roughly).
# Leads ≈ 1.2 × customers, interactions ≈ 10 × customers.
SIZES: dict[str, int] = {"small": 2_000, "medium": 50_000, "large": 1_000_000}

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

DAY = 86_400
_EPOCH = date(1970, 1, 1)
_EXCEL_EPOCH_DAYS = (date(1899, 12, 30) - _EPOCH).days
_PURCHASED_CAP = 40_000  # a purchased list is tens of thousands of rows, not millions
_JSON_PAGE = 1_000_000  # records per WeChat events page

# --------------------------------------------------------------------------------------------
# reference tables
# --------------------------------------------------------------------------------------------

# city, province, region (sales 大区), ID-card area code, weight, landline area code
_CITIES: tuple[tuple[str, str, str, int, int, str], ...] = (
    ("上海", "上海", "华东", 310104, 9, "021"),
    ("北京", "北京", "华北", 110105, 8, "010"),
    ("广州", "广东", "华南", 440106, 7, "020"),
    ("深圳", "广东", "华南", 440305, 7, "0755"),
    ("杭州", "浙江", "华东", 330106, 6, "0571"),
    ("南京", "江苏", "华东", 320106, 5, "025"),
    ("苏州", "江苏", "华东", 320505, 5, "0512"),
    ("成都", "四川", "西南", 510107, 5, "028"),
    ("武汉", "湖北", "华中", 420106, 5, "027"),
    ("重庆", "重庆", "西南", 500103, 4, "023"),
    ("宁波", "浙江", "华东", 330203, 3, "0574"),
    ("西安", "陕西", "西北", 610113, 3, "029"),
    ("长沙", "湖南", "华中", 430104, 3, "0731"),
    ("郑州", "河南", "华中", 410105, 3, "0371"),
    ("天津", "天津", "华北", 120104, 3, "022"),
    ("青岛", "山东", "华东", 370202, 3, "0532"),
    ("东莞", "广东", "华南", 441900, 3, "0769"),
    ("佛山", "广东", "华南", 440604, 3, "0757"),
    ("济南", "山东", "华东", 370102, 2, "0531"),
    ("厦门", "福建", "华东", 350203, 2, "0592"),
    ("福州", "福建", "华东", 350102, 2, "0591"),
    ("合肥", "安徽", "华东", 340104, 2, "0551"),
    ("无锡", "江苏", "华东", 320213, 2, "0510"),
    ("沈阳", "辽宁", "东北", 210102, 2, "024"),
    ("大连", "辽宁", "东北", 210202, 2, "0411"),
    ("哈尔滨", "黑龙江", "东北", 230102, 2, "0451"),
    ("昆明", "云南", "西南", 530102, 2, "0871"),
    ("石家庄", "河北", "华北", 130102, 2, "0311"),
    ("长春", "吉林", "东北", 220102, 1, "0431"),
    ("贵阳", "贵州", "西南", 520102, 1, "0851"),
    ("南宁", "广西", "华南", 450102, 1, "0771"),
    ("太原", "山西", "华北", 140105, 1, "0351"),
    ("南昌", "江西", "华中", 360102, 1, "0791"),
    ("兰州", "甘肃", "西北", 620102, 1, "0931"),
    ("乌鲁木齐", "新疆", "西北", 650102, 1, "0991"),
)
_CITY = tuple(c[0] for c in _CITIES)
_PROVINCE = tuple(c[1] for c in _CITIES)
_REGIONS = ("华东", "华北", "华南", "华中", "西南", "西北", "东北")
_CITY_REGION = np.array([_REGIONS.index(c[2]) for c in _CITIES], dtype=np.int64)
_CITY_AREA = np.array([c[3] for c in _CITIES], dtype=np.int64)
_CITY_W = np.array([c[4] for c in _CITIES], dtype=np.float64)
_CITY_TEL = tuple(c[5] for c in _CITIES)
_MALLS = ("万象城店", "来福士店", "吾悦广场店", "万达广场店", "大悦城店", "银泰店", "龙湖天街店")

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

# name, unit price, min qty, max qty
_B2B_PRODUCTS: tuple[tuple[str, float, int, int], ...] = (
    ("酒店智能客控系统", 3200.0, 20, 300),
    ("智能门锁 X1 工程版", 1350.0, 20, 500),
    ("楼宇可视对讲系统", 85000.0, 1, 3),
    ("全屋智能样板间方案", 48000.0, 1, 4),
    ("智能照明控制模块", 420.0, 10, 200),
    ("年度维保服务", 16000.0, 1, 2),
)
_B2C_PRODUCTS: tuple[tuple[str, float], ...] = (
    ("智能门锁 X1", 2599.0),
    ("智能门锁 X3 Pro", 3999.0),
    ("扫地机器人 R8", 2999.0),
    ("净水器 W5", 1899.0),
    ("空气净化器 A7", 1599.0),
    ("智能摄像头 C2", 299.0),
    ("智能开关面板套装", 899.0),
    ("上门安装服务", 199.0),
    ("延保服务(2年)", 399.0),
    ("RO滤芯(3支装)", 269.0),
)
_B2C_W = np.array([14, 8, 10, 9, 7, 10, 6, 12, 6, 18], dtype=np.float64)

# canonical lead channels (all of them also carry marketing spend)
_CHANNELS = (
    "paid_search",
    "info_feed",
    "wechat",
    "organic",
    "trade_show",
    "purchased_list",
    "referral",
    "call_center",
)
_CH = {c: i for i, c in enumerate(_CHANNELS)}
_CHANNEL_CN = ("百度", "抖音", "微信", "官网", "展会", "名单", "转介绍", "400")
# every label a raw file uses for a channel; cockpit.toml [channel_aliases] lists them all
CHANNEL_LABELS: dict[str, tuple[str, ...]] = {
    "paid_search": ("百度推广", "baidu_sem", "SEM ", "Baidu SEM", "百度SEM"),
    "info_feed": ("抖音信息流", "douyin_ads", "巨量引擎", "Douyin Ads"),
    "wechat": ("微信广告", "wechat", "广点通", "WeChat Ads", "公众号"),
    "organic": ("官网自然流量", "organic", "SEO", "直接访问"),
    "trade_show": ("展会", "trade_show", "Trade Show", "线下展会"),
    "purchased_list": ("外购名单", "purchased_list", "第三方名单", "List Purchase"),
    "referral": ("转介绍", "老客户推荐", "referral", "Referral "),
    "call_center": ("400热线", "400 hotline", "call_center", "呼叫中心"),
    # interaction-only channels
    "wecom": ("企业微信", "WeCom"),
    "direct_sales": ("销售跟进",),
}
# campaign themes per channel ("2024Q3-百度-品牌词"); trade shows and lists name their own
_THEMES: tuple[tuple[str, ...], ...] = (
    ("品牌词", "产品词", "竞品词"),
    ("智能门锁", "全屋智能"),
    ("公众号推文", "朋友圈广告"),
    ("内容营销",),
    (),
    (),
    ("老带新",),
    (),
)
# cost per lead, yuan: ads, SEO / content team, booths, (lists: per record), referral rewards, 400 line + agents
_CPL = np.array([260.0, 190.0, 210.0, 150.0, 900.0, 0.0, 400.0, 250.0])
_CPC = np.array([4.5, 1.8, 2.2, 0.0, 0.0, 0.0, 0.0, 0.0])  # cost per click; 0 = no click data
_P_MQL = np.array([0.40, 0.30, 0.35, 0.45, 0.45, 0.12, 0.65, 0.55])

# CRM funnel stage labels: the old (Salesforce) CRM wrote English, the current one Chinese
STAGE_LABELS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lead": (("Lead",), ("线索", "新线索")),
    "mql": (("MQL",), ("MQL", "市场认可线索")),
    "sql": (("SQL",), ("SQL", "销售认可线索")),
    "opportunity": (("Qualified to buy", "Opportunity"), ("商机",)),
    "won": (("Closed Won",), ("赢单", "成交")),
    "lost": (("Closed Lost",), ("输单", "丢单")),
}
_STAGES = tuple(STAGE_LABELS)

# (name, month, day, length in days, city)
_SHOWS: tuple[tuple[str, int, int, int, str], ...] = (
    ("AWE中国家电及消费电子博览会", 3, 14, 4, "上海"),
    ("上海国际酒店及餐饮业博览会", 4, 1, 4, "上海"),
    ("中国(广州)国际建筑装饰博览会", 7, 8, 4, "广州"),
    ("深圳国际智能家居展", 8, 26, 3, "深圳"),
    ("中国国际住宅产业博览会", 10, 15, 3, "北京"),
    ("成都国际酒店用品展", 11, 20, 3, "成都"),
)
_SHOW_SLUG = ("awe", "hotelex", "cbd", "smarthome", "chinahouse", "chengdu")
_VENDORS = ("数聚科技", "客源宝", "企查名录", "拓客云")
_FORMS = ("官网", "H5", "小程序")
_PAGES = ("/solutions/hotel", "/products/lock-x1", "/products/robot-r8", "/contact", "/campaign/618", "/")

_CRM_KINDS = ("上门拜访", "电话沟通", "微信沟通", "邮件", "方案演示")
_CRM_KIND_W = np.array([30, 35, 24, 5, 6], dtype=np.float64)
_CRM_OUTCOMES = ("有意向", "待跟进", "已报价", "无意向", "已成交", "暂无预算")
_CRM_NOTES = (
    "客户关注{}价格,约下周复访",
    "已发送{}方案及报价单",
    "演示{},客户反馈良好",
    "对方负责人出差,改期沟通{}",
    "客户比较{}与竞品,需提供案例",
    "{}项目预算待审批",
)

_CALL_TYPES = ("Inquiry", "Complaint", "Service Request", "Installation", "Outbound Follow-up")
_CALL_QUEUE = ("400-Sales", "400-Complaint", "400-Service", "400-Service", "Outbound")
_CALL_RESULTS = ("Resolved", "Escalated", "Callback Scheduled", "Transferred", "No Answer")
_CALL_NOTES = (
    ("咨询{}价格及安装费用", "咨询{}功能", "咨询酒店客控方案报价"),
    ("投诉安装师傅迟到", "投诉{}故障未及时处理", "要求退货退款", "投诉售后态度差"),
    ("{}报修", "{}无法联网", "净水器漏水报修", "门锁电量低报警"),
    ("预约{}上门安装", "改约安装时间"),
    ("回访满意度:满意", "回访满意度:一般", "活动邀约", "续保提醒"),
)

_WX_EVENTS = ("subscribe", "text", "click", "view", "wecom_chat", "unsubscribe")
_WX_CONTENT = {
    "text": ("在吗", "门锁怎么设置指纹", "有优惠吗", "售后电话多少", "滤芯多久换一次", "能开发票吗"),
    "click": ("MENU_PRODUCTS", "MENU_SERVICE", "MENU_MEMBER"),
    "view": ("https://m.zhilian-home.cn/article/{}", "https://m.zhilian-home.cn/act/618"),
    "wecom_chat": ("您好,安装师傅明天上午到", "已为您登记报修", "新品发布邀请", "这是您要的报价单"),
}
_NICK_A = ("快乐的", "安静的", "追风的", "爱吃鱼的", "努力的", "温柔的", "小小", "阿", "")
_NICK_B = ("小鱼", "少年", "猫", "太阳", "雨", "花开", "木子", "晴天", "蜗牛", "橙子", "Sunny", "Lucky")

_SIMILAR = dict(
    zip(
        "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚华玉兰红林辉斌宇浩凯健俊慧佳欣婷晨鹏文波志东成峰飞宁琴云倩梅颖",
        "玮方那民婧莉蔷垒君阳永燕洁鹃滔铭朝琇夏萍钢桦钰岚虹琳晖彬羽皓恺建峻惠嘉馨亭辰朋雯博智冬诚锋菲凝芹芸茜玫莹",
        strict=True,
    )
)
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

_HOURS: dict[str, tuple[int, ...]] = {
    "office": (0, 0, 0, 0, 0, 0, 0, 1, 4, 9, 10, 9, 5, 7, 9, 9, 8, 6, 3, 2, 1, 1, 0, 0),
    "retail": (0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 5, 7, 8, 7, 7, 7, 8, 9, 9, 9, 8, 5, 2, 0),
    "online": (2, 1, 1, 0, 0, 0, 1, 2, 4, 6, 7, 7, 6, 6, 7, 7, 7, 7, 7, 8, 9, 10, 8, 5),
    "call": (0, 0, 0, 0, 0, 0, 0, 0, 4, 9, 10, 9, 6, 7, 9, 9, 8, 6, 4, 3, 2, 1, 0, 0),
    "show": (0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 10, 10, 6, 8, 10, 9, 6, 1, 0, 0, 0, 0, 0, 0),
}


@dataclass(frozen=True)
class DemoResult:
    raw_dir: Path
    truth_path: Path
    files: list[Path]
    counts: dict[str, int]  # rows written per "source.entity"


def generate(
    data_dir: Path,
    size: str = "small",
    seed: int = 42,
    as_of: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Write the demo sources under ``<data_dir>/raw/demo`` (replacing them) and the ground truth."""
    if size not in SIZES:
        raise ConfigError(f"unknown demo size '{size}' (expected one of: {', '.join(SIZES)})")
    return _Demo(SIZES[size], seed, as_of or date.today(), progress).run(Path(data_dir))


# --------------------------------------------------------------------------------------------
# small vectorized helpers
# --------------------------------------------------------------------------------------------


def _norm(w: Sequence[float] | F64) -> F64:
    a: F64 = np.asarray(w, dtype=np.float64)
    return a / float(a.sum())


def _pick(rng: np.random.Generator, n: int, weights: Sequence[float] | F64) -> I64:
    out: I64 = rng.choice(len(weights), size=n, p=_norm(weights)).astype(np.int64)
    return out


def _pick_rows(rng: np.random.Generator, table: F64, row: I64) -> I64:
    """Per element, a category drawn from ``table[row]`` (rows are weights)."""
    cum = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)[row]
    u = rng.random(row.size)
    out: I64 = np.minimum((u[:, None] > cum).sum(axis=1), table.shape[1] - 1).astype(np.int64)
    return out


def _lookup(table: Sequence[str | None], idx: I64) -> pl.Series:
    return pl.Series(list(table), dtype=pl.String).gather(idx)


def _ids(prefix: str, n: int, width: int, start: int = 1) -> pl.Series:
    num = pl.Series(np.arange(start, start + n, dtype=np.int64)).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str([pl.lit(prefix), pl.lit(num)])).to_series() if n else num


def _nulls(s: pl.Series, mask: Bool) -> pl.Series:
    idx = np.flatnonzero(mask)
    return s.clone().scatter(idx, None) if idx.size else s


def _concat(*parts: pl.Series | str) -> pl.Series:
    exprs = [pl.lit(p) for p in parts]
    return pl.select(pl.concat_str(exprs)).to_series()


def _fmt(ts: I64, fmt: str) -> pl.Series:
    return (pl.Series(ts, dtype=pl.Int64) * 1000).cast(pl.Datetime("ms")).dt.strftime(fmt)


def _fmt_day(days: I64, fmt: str) -> pl.Series:
    return pl.Series(days, dtype=pl.Int64).cast(pl.Int32).cast(pl.Date).dt.strftime(fmt)


def _random_strings(rng: np.random.Generator, n: int, length: int, alphabet: str) -> pl.Series:
    table = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
    raw = table[rng.integers(0, len(alphabet), size=(n, length))]
    return pl.Series(raw.view(f"S{length}").ravel()).cast(pl.String)


def _with_dups(df: pl.DataFrame, rng: np.random.Generator, rate: float = 0.005) -> pl.DataFrame:
    """Exact duplicated rows (~rate), each right after its original, as exports have them."""
    n = df.height
    k = round(n * rate)
    if k == 0:
        return df
    extra = rng.choice(n, size=k, replace=False)
    order = np.sort(np.concatenate([np.arange(n), extra]), kind="stable")
    return df[order]


def _weekday(days: I64) -> I64:
    return (days + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)


# --------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------


class _Demo:
    def __init__(self, n: int, seed: int, as_of: date, progress: Callable[[str], None] | None) -> None:
        self.n = n
        self.seed = seed
        self.as_of = as_of
        self.today = (as_of - _EPOCH).days
        self.start = self.today - 730  # the data covers the 24 months before as_of
        self.cutoff = self.today * DAY + 12 * 3600  # nothing after noon on as_of
        self.lo = self.start * DAY
        self.progress = progress
        self.files: list[Path] = []
        self.counts: dict[str, int] = {}
        self.truth: list[pl.DataFrame] = []
        self.raw = Path()

    # ---------------------------------------------------------------- plumbing
    def _rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    def _say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def _out(self, source: str, name: str) -> Path:
        folder = self.raw / source
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        self.files.append(path)
        return path

    def _count(self, key: str, rows: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + rows

    def _add_truth(self, source: str, ids: pl.Series, person: I64) -> None:
        self.truth.append(
            pl.DataFrame(
                {
                    "source_system": pl.Series([source], dtype=pl.String).gather(np.zeros(len(ids), dtype=np.int64)),
                    "source_record_id": ids.cast(pl.String),
                    "person_id": self.p_id.gather(person),
                }
            )
        )

    def _ts(self, rng: np.random.Generator, days: I64, profile: str) -> I64:
        """Seconds since epoch: a day plus a time of day drawn from an hourly profile."""
        n = days.size
        hour = rng.choice(24, size=n, p=_norm(_HOURS[profile])).astype(np.int64)
        tod = hour * 3600 + rng.integers(0, 3600, size=n)
        tod = np.where(days == self.today, 7 * 3600 + tod % (5 * 3600), tod)  # as_of: the morning
        return days * DAY + tod

    def _spread(self, rng: np.random.Generator, begin: I64, end: I64, rate: F64, decay: Bool) -> tuple[I64, I64]:
        """Poisson events per owner in [max(begin, window start), end); decaying owners thin out.

        Returns (owner index, day) per event.
        """
        lo = np.maximum(begin, self.lo)
        span = np.maximum(end - lo, 0)
        k = rng.poisson(rate * span / DAY)
        owner = np.repeat(np.arange(begin.size, dtype=np.int64), k)
        u = rng.random(owner.size)
        u = np.where(decay[owner], 1.0 - np.cbrt(1.0 - u), u)  # density ∝ (1 - x)²: thins to nothing
        t = lo[owner] + (u * span[owner]).astype(np.int64)
        return owner, np.minimum(t // DAY, self.today)

    def _clip(self, rng: np.random.Generator, ts: I64, lo: I64, hi: I64) -> I64:
        """Fold times that fell outside [lo, hi] (first/last day of a window) back inside."""
        hi = np.minimum(hi, self.cutoff)
        jitter = rng.integers(600, 7200, ts.size)
        ts = np.where(ts > hi, hi - jitter, ts)
        return np.where(ts < lo, np.minimum(lo + jitter, hi), ts)

    def _after(self, rng: np.random.Generator, created: I64, profile: str) -> I64:
        """A time between ``created`` and as_of (e.g. last modified)."""
        cday = np.minimum(created // DAY, self.today)
        day = cday + (rng.random(created.size) * (self.today - cday + 1)).astype(np.int64)
        return np.maximum(self._ts(rng, np.minimum(day, self.today), profile), created)

    # ---------------------------------------------------------------- run
    def run(self, data_dir: Path) -> DemoResult:
        self.raw = data_dir / "raw" / "demo"
        if self.raw.exists():
            shutil.rmtree(self.raw)
        self.raw.mkdir(parents=True)
        self._pools()
        self._people()
        self._make_leads()
        self._memberships()
        self._say(f"people: {self.m:,} persons, {int(self.is_cust.sum()):,} customers, {self.nl:,} leads")
        self._crm()
        self._erp()
        self._web_forms()
        self._wechat()
        self._call_center()
        self._pos()
        self._purchased()
        self._trade_show()
        self._marketing()
        truth_dir = data_dir / "demo_truth"
        truth_dir.mkdir(parents=True, exist_ok=True)
        truth_path = truth_dir / "identity.csv"
        truth = pl.concat(self.truth).unique(subset=["source_system", "source_record_id"], maintain_order=True)
        truth.write_csv(truth_path)
        self._say(f"truth: {truth.height:,} records of {truth['person_id'].n_unique():,} persons")
        return DemoResult(self.raw, truth_path, list(self.files), dict(self.counts))

    # ---------------------------------------------------------------- pools (Faker, small)
    def _pools(self) -> None:
        from faker import Faker
        from faker.providers.company.zh_CN import Provider as CompanyProvider
        from faker.providers.person.zh_CN import Provider as PersonProvider

        fake = Faker("zh_CN")
        fake.seed_instance(self.seed)
        self.surnames = [fake.last_name() for _ in range(3000)]  # keeps Faker's frequencies
        given = [fake.first_name() for _ in range(2000)]
        chars = sorted({c for name in PersonProvider.first_names for c in name} | set(_SIMILAR))
        rng = self._rng("pools")
        one = rng.choice(chars, size=600)
        two = np.char.add(rng.choice(chars, size=1400), rng.choice(chars, size=1400))
        self.given = given + one.tolist() + two.tolist()
        self.name_chars = chars
        self.users = sorted({fake.user_name() for _ in range(3000)})
        self.brands = sorted(
            {p for p in CompanyProvider.company_prefixes if 2 <= len(p) <= 4 and p.isalpha() and not p.isascii()}
        )
        self.domains = sorted({w for w in (fake.domain_word() for _ in range(800)) if w.isalpha() and w.isascii()})
        self.reps = [fake.name() for _ in range(max(12, min(300, self.n // 150)))]

    # ---------------------------------------------------------------- people
    def _people(self) -> None:
        rng = self._rng("people")
        n = self.n
        self.nb = round(n * 0.955)  # customers that exist without a lead in the window
        self.nl = round(n * 1.2)  # leads
        self.nf = round(self.nl * 0.8)  # leads that bring a new person
        self.na_fans = round(n * 0.1)  # anonymous WeChat fans
        self.na_call = round(n * 0.04)  # callers known only to the call center
        m = self.nb + self.nf + self.na_fans + self.na_call
        self.m = m
        self.block = np.repeat(np.arange(4), [self.nb, self.nf, self.na_fans, self.na_call]).astype(np.int64)
        self.p_id = _ids("P", m, 7)
        b2b_share = np.array([0.25, 0.55, 0.0, 0.10])
        self.b2b = rng.random(m) < b2b_share[self.block]

        sur = rng.integers(0, len(self.surnames), m)
        giv = rng.integers(0, len(self.given), m)
        self.p_name = _concat(_lookup(self.surnames, sur), _lookup(self.given, giv))

        raw = _MOBILE_PREFIX[rng.integers(0, _MOBILE_PREFIX.size, m + m // 20 + 100)] * 100_000_000 + rng.integers(
            0, 100_000_000, m + m // 20 + 100
        )
        _, first = np.unique(raw, return_index=True)
        self.phone = raw[np.sort(first)[:m]]
        self.zero_prefix = rng.random(m) < 0.25  # the PBX shows these callers with a leading 0

        self.city = _pick(rng, m, _CITY_W)
        self.region = _CITY_REGION[self.city]
        # sales reps: rep r covers region r % 7; a person's owner is a rep of their region
        nreg = len(_REGIONS)
        per_region = (len(self.reps) - np.arange(nreg) + nreg - 1) // nreg
        self.owner = self.region + nreg * (rng.integers(0, 1 << 30, m) % per_region[self.region])

        age = np.where(self.b2b, rng.integers(24, 60, m), rng.integers(19, 68, m))
        self.birth = self.today - age * 365 - rng.integers(0, 365, m)
        seq = rng.integers(0, 1000, m)
        body = (
            _CITY_AREA[self.city] * 100_000_000_000
            + pl.Series(self.birth).cast(pl.Int32).cast(pl.Date).dt.strftime("%Y%m%d").cast(pl.Int64).to_numpy() * 1000
            + seq
        )
        digits = (body[:, None] // (10 ** np.arange(16, -1, -1, dtype=np.int64))) % 10
        weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
        check = (digits * weights).sum(axis=1) % 11
        self.id_number = _concat(pl.Series(body).cast(pl.String), _lookup(list("10X98765432"), check))
        self.gender = np.where(seq % 2 == 1, "男", "女")

        kind = _pick(rng, m, [0.35, 0.45, 0.20])  # qq / personal mailbox / work mailbox
        kind = np.where((kind == 2) & ~self.b2b, 1, kind)
        user = _concat(
            _lookup(self.users, rng.integers(0, len(self.users), m)),
            pl.Series(rng.integers(0, 100_000, m)).cast(pl.String),
        )
        qq = pl.Series(rng.integers(100_000, 3_000_000_000, m)).cast(pl.String)
        dom = _lookup(_MAIL_DOMAINS, rng.integers(0, len(_MAIL_DOMAINS), m))
        work = _concat(_lookup(self.domains, rng.integers(0, len(self.domains), m)), ".com.cn")
        email = pl.DataFrame({"k": kind, "u": user, "q": qq, "d": dom, "w": work}).select(
            pl.when(pl.col("k") == 0)
            .then(pl.concat_str([pl.col("q"), pl.lit("@qq.com")]))
            .when(pl.col("k") == 1)
            .then(pl.concat_str([pl.col("u"), pl.lit("@"), pl.col("d")]))
            .otherwise(pl.concat_str([pl.col("u"), pl.lit("@"), pl.col("w")]))
            .alias("e")
        )["e"]
        dup = email.is_duplicated() & ~email.is_first_distinct()
        self.p_email = pl.DataFrame({"e": email, "d": dup, "i": np.arange(m)}).select(
            pl.when(pl.col("d"))
            .then(pl.concat_str([pl.lit("u"), pl.col("i").cast(pl.String), pl.lit("@163.com")]))
            .otherwise(pl.col("e"))
            .alias("e")
        )["e"]

        # companies: a pool of ~1 company per 3 B2B contacts, "<city><brand><industry word><suffix>"
        nco = max(50, int(self.b2b.sum()) // 3)
        co_city = _pick(rng, nco, _CITY_W)
        co_ind = _pick(rng, nco, [w for *_, w in _INDUSTRIES])
        core = _concat(
            _lookup(self.brands, rng.integers(0, len(self.brands), nco)),
            _lookup([w for _, w, _ in _INDUSTRIES], co_ind),
            _lookup(_COMPANY_SUFFIX, rng.integers(0, len(_COMPANY_SUFFIX), nco)),
        )
        full = _concat(_lookup(_CITY, co_city), core)
        company = np.where(self.b2b, rng.integers(0, nco, m), -1)
        has = company >= 0
        safe = np.maximum(company, 0)
        self.p_company = _nulls(full.gather(safe), ~has)
        self.p_company_short = _nulls(core.gather(safe), ~has)  # written without the city by some
        self.p_industry = _nulls(_lookup([i for i, *_ in _INDUSTRIES], co_ind[safe]), ~has)
        self.city = np.where(has, co_city[safe], self.city)  # a B2B contact works where the company is
        self.region = _CITY_REGION[self.city]
        self.title = _lookup(_TITLES, rng.integers(0, len(_TITLES), m))

        # base customers: since when (55 % from before the window), and who churns
        since_day = np.where(
            rng.random(m) < 0.55,
            rng.integers(self.today - 6 * 365, self.start, m),
            rng.integers(self.start, self.today + 1, m),
        )
        never = np.iinfo(np.int64).max // 4
        self.since = np.where(self.block == 0, self._ts(rng, since_day, "office"), never)
        self.never = never

    # ---------------------------------------------------------------- dirty copies of a person
    def _names(self, rng: np.random.Generator, idx: I64, typo: float, space: float = 0.0) -> pl.Series:
        name = self.p_name.gather(idx)
        u = rng.random(idx.size)
        bad = u < typo
        if bad.any():
            sub = name.filter(pl.Series(bad))
            last = sub.str.slice(-1)
            fallback = _lookup(self.name_chars, rng.integers(0, len(self.name_chars), sub.len()))
            new_last = pl.DataFrame({"l": last, "f": fallback}).select(
                pl.col("l").replace_strict(_SIMILAR, default=pl.col("f"))
            )["l"]
            changed = _concat(sub.str.slice(0, sub.str.len_chars() - 1), new_last)
            name = name.scatter(np.flatnonzero(bad), changed)
        spaced = (u >= typo) & (u < typo + space)
        if spaced.any():
            name = name.scatter(np.flatnonzero(spaced), _concat(name.filter(pl.Series(spaced)), " "))
        return name

    def _phones(
        self,
        rng: np.random.Generator,
        idx: I64,
        styles: Sequence[float],
        missing: float,
        invalid: float = 0.012,
    ) -> pl.Series:
        """A person's mobile as one system stores it. ``styles`` weighs the formats 0 13800138000,
        1 +86 138-0013-8000, 2 138 0013 8000, 3 0086 13800138000, 4 138-0013-8000, 5 +8613800138000;
        ``invalid`` is the share of the filled values that are broken (a digit short, or a landline)."""
        n = idx.size
        d = pl.Series(self.phone[idx]).cast(pl.String)
        style = _pick(rng, n, styles)
        u = rng.random(n)
        bad = np.where(rng.random(n) < invalid, 1 + _pick(rng, n, [1, 1]), 0)
        land = _concat(
            _lookup(_CITY_TEL, self.city[idx]), "-", pl.Series(rng.integers(20_000_000, 89_999_999, n)).cast(pl.String)
        )
        df = pl.DataFrame({"d": d, "s": style, "u": u, "b": bad, "l": land})
        a, b, c, s = pl.col("d").str.slice(0, 3), pl.col("d").str.slice(3, 4), pl.col("d").str.slice(7, 4), pl.col("s")
        nice = (
            pl.when(s == 1)
            .then(pl.concat_str([pl.lit("+86 "), a, pl.lit("-"), b, pl.lit("-"), c]))
            .when(s == 2)
            .then(pl.concat_str([a, pl.lit(" "), b, pl.lit(" "), c]))
            .when(s == 3)
            .then(pl.concat_str([pl.lit("0086 "), pl.col("d")]))
            .when(s == 4)
            .then(pl.concat_str([a, pl.lit("-"), b, pl.lit("-"), c]))
            .when(s == 5)
            .then(pl.concat_str([pl.lit("+86"), pl.col("d")]))
            .otherwise(pl.col("d"))
        )
        return df.select(
            pl.when(pl.col("u") < missing)
            .then(pl.lit(None, dtype=pl.String))
            .when(pl.col("b") == 1)
            .then(pl.col("d").str.slice(0, 10))
            .when(pl.col("b") == 2)
            .then(pl.col("l"))
            .otherwise(nice)
            .alias("phone")
        )["phone"]

    def _emails(
        self, rng: np.random.Generator, idx: I64, missing: float, upper: float = 0.08, invalid: float = 0.015
    ) -> pl.Series:
        """A person's email as one system stores it: ``missing`` of them empty; of the filled ones,
        ``invalid`` broken and ``upper`` in upper or capitalized case."""
        n = idx.size
        df = pl.DataFrame(
            {"e": self.p_email.gather(idx), "m": rng.random(n), "u": rng.random(n), "b": _pick(rng, n, [1, 1, 1])}
        )
        u = pl.col("u")
        broken = (
            pl.when(pl.col("b") == 0)
            .then(pl.col("e").str.replace("@", "#", literal=True))
            .when(pl.col("b") == 1)
            .then(pl.col("e").str.replace(r"\.[a-z]+$", ""))
            .otherwise(pl.col("e").str.replace("@", "@@", literal=True))
        )
        cap = pl.concat_str([pl.col("e").str.slice(0, 1).str.to_uppercase(), pl.col("e").str.slice(1)])
        return df.select(
            pl.when(pl.col("m") < missing)
            .then(pl.lit(None, dtype=pl.String))
            .when(u < invalid)
            .then(broken)
            .when(u < invalid + upper / 2)
            .then(pl.col("e").str.to_uppercase())
            .when(u < invalid + upper)
            .then(cap)
            .otherwise(pl.col("e"))
            .alias("email")
        )["email"]

    def _companies(self, rng: np.random.Generator, idx: I64, missing: float, short: float = 0.06) -> pl.Series:
        u = rng.random(idx.size)
        full = self.p_company.gather(idx)
        full = full.scatter(np.flatnonzero(u < short), self.p_company_short.gather(idx[u < short]))
        return _nulls(full, (u >= short) & (u < short + missing))

    def _opt(self, rng: np.random.Generator, s: pl.Series, missing: float) -> pl.Series:
        return _nulls(s, rng.random(s.len()) < missing)

    # ---------------------------------------------------------------- leads and the funnel
    def _make_leads(self) -> None:
        rng = self._rng("leads")
        nl, nf = self.nl, self.nf
        nr = round(nl * 0.15)
        nu = nl - nf - nr
        prospects = np.arange(self.nb, self.nb + nf, dtype=np.int64)
        base_b2b = np.flatnonzero((self.block == 0) & self.b2b)
        base_all = np.flatnonzero(self.block == 0)
        upsell = np.where(
            rng.random(nu) < 0.8,
            base_b2b[rng.integers(0, max(1, base_b2b.size), nu)],
            base_all[rng.integers(0, base_all.size, nu)],
        )
        person = np.concatenate([prospects, prospects[rng.integers(0, nf, nr)], upsell])
        kind = np.repeat(np.arange(3), [nf, nr, nu])  # fresh / repeat / upsell
        # source: 0 crm, 1 web_forms, 2 trade_show, 3 purchased_leads
        table = np.array([[0.30, 0.33, 0.22, 0.15], [0.20, 0.75, 0.05, 0.0], [0.45, 0.45, 0.10, 0.0]])
        row = np.where(kind == 0, np.where(self.b2b[person], 0, 1), 2)
        source = _pick_rows(rng, table, row)
        pl_idx = np.flatnonzero(source == 3)
        if pl_idx.size > _PURCHASED_CAP:
            source[pl_idx[_PURCHASED_CAP:]] = 1
        # channel per source
        ch_table = np.zeros((4, len(_CHANNELS)))
        ch_table[0, [_CH[c] for c in _CHANNELS]] = [0.10, 0.05, 0.10, 0.07, 0.08, 0.0, 0.30, 0.30]
        ch_table[1, :4] = [0.35, 0.20, 0.15, 0.30]
        ch_table[2, _CH["trade_show"]] = 1
        ch_table[3, _CH["purchased_list"]] = 1
        channel = _pick_rows(rng, ch_table, source)

        # created: growth trend, quiet weekends, 618 and 双11 bumps
        days = np.arange(self.start, self.today + 1, dtype=np.int64)
        month = pl.Series(days).cast(pl.Int32).cast(pl.Date).dt.month().to_numpy()
        w = (1 + 0.6 * (days - self.start) / 730) * np.array([1, 1, 1, 1, 0.95, 0.55, 0.45])[_weekday(days)]
        w = w * np.where(np.isin(month, [6, 11]), 1.25, 1.0)
        day = days[rng.choice(days.size, size=nl, p=_norm(w))]
        profile_ts = self._ts(rng, day, "online")
        office_ts = self._ts(rng, day, "office")
        created = np.where(source == 1, profile_ts, office_ts)
        for s in (0, 1):  # some leads of today, so "today" tiles are never empty
            idx = np.flatnonzero(source == s)
            k = min(idx.size, max(2, idx.size // 600))
            pick = rng.choice(idx, size=k, replace=False)
            created[pick] = self._ts(rng, np.full(k, self.today, dtype=np.int64), "office")

        # trade shows in the window (at least 3 days ago) and purchased list batches
        shows: list[tuple[int, int, int, int]] = []  # (index, first day, length, show id)
        for year in range(self.as_of.year - 2, self.as_of.year + 1):
            for i, (_, mo, dd, length, _city) in enumerate(_SHOWS):
                first = (date(year, mo, dd) - _EPOCH).days
                if self.start <= first and first + length <= self.today - 3:
                    shows.append((i, first, length, year))
        self.shows = shows
        ts_idx = np.flatnonzero(source == 2)
        which = rng.integers(0, len(shows), ts_idx.size)
        sh = np.array(shows, dtype=np.int64)
        sday = sh[which, 1] + rng.integers(0, 1 << 20, ts_idx.size) % sh[which, 2]
        created[ts_idx] = self._ts(rng, sday, "show")
        self.show_of = np.full(nl, -1, dtype=np.int64)
        self.show_of[ts_idx] = which

        nbatch = 6
        batch_day = np.sort(rng.choice(np.arange(self.start + 20, self.today - 10), size=nbatch, replace=False))
        self.batch_day = batch_day.astype(np.int64)
        pl_idx = np.flatnonzero(source == 3)
        bw = rng.integers(0, nbatch, pl_idx.size)
        created[pl_idx] = batch_day[bw] * DAY + rng.integers(10 * 3600, 18 * 3600, pl_idx.size)
        self.batch_of = np.full(nl, -1, dtype=np.int64)
        self.batch_of[pl_idx] = bw

        # the funnel: stage reached and when (gamma-distributed durations, nothing after the cutoff)
        u = rng.random((nl, 6))
        b2b = self.b2b[person]
        reach = np.zeros((nl, 6), dtype=bool)  # lead, mql, sql, opportunity, won, lost
        t = np.zeros((nl, 6), dtype=np.int64)
        reach[:, 0] = True
        t[:, 0] = created
        p_mql = np.where(kind == 2, 0.6, _P_MQL[channel])
        reach[:, 1] = u[:, 0] < p_mql
        reach[:, 2] = reach[:, 1] & (u[:, 1] < 0.5)
        reach[:, 3] = reach[:, 2] & (u[:, 2] < 0.55)
        reach[:, 4] = reach[:, 3] & (u[:, 3] < 0.42)
        reach[:, 5] = (reach[:, 3] & ~reach[:, 4]) | (reach[:, 2] & ~reach[:, 3] & (u[:, 4] < 0.3))
        dur = np.stack(
            [
                rng.gamma(1.5, 3.0, nl),
                rng.gamma(2.0, 5.0, nl),
                rng.gamma(2.0, 8.0, nl),
                rng.gamma(2.5, 12.0, nl),
            ],
            axis=1,
        )
        for k in (1, 2, 3):
            t[:, k] = t[:, k - 1] + ((0.1 + dur[:, k - 1]) * DAY).astype(np.int64)
        close = np.where(reach[:, 3], t[:, 3], t[:, 2]) + ((1 + dur[:, 3]) * DAY).astype(np.int64)
        t[:, 4] = close
        t[:, 5] = close
        reach &= t <= self.cutoff
        reach[:, 0] = True
        for k in (2, 3):
            reach[:, k] &= reach[:, k - 1]
        reach[:, 4] &= reach[:, 3]
        reach[:, 5] &= reach[:, 2]
        amount = np.round(
            np.where(b2b, rng.lognormal(np.log(60_000), 0.8, nl), rng.lognormal(np.log(4_000), 0.5, nl)), -1
        )
        order = np.argsort(created, kind="stable")
        self.l_person = person[order]
        self.l_source = source[order]
        self.l_channel = channel[order]
        self.l_created = created[order]
        self.l_reach = reach[order]
        self.l_t = t[order]
        self.l_amount = amount[order]
        self.show_of = self.show_of[order]
        self.batch_of = self.batch_of[order]
        # lead ids: per-source prefixes, numbered in time order
        lead_id = pl.Series([""] * nl, dtype=pl.String)
        for s, prefix in enumerate(("CRM-", "WEB-", "TS-", "PL-")):
            idx = np.flatnonzero(self.l_source == s)
            lead_id = lead_id.scatter(idx, _ids(prefix, idx.size, 8, start=10001 if s == 0 else 1))
        self.l_id = lead_id
        self.l_campaign = self._campaigns(rng)

        # won prospects become customers at their first win
        won_ts = np.where(self.l_reach[:, 4], self.l_t[:, 4], self.never)
        first_win = np.full(self.m, self.never, dtype=np.int64)
        np.minimum.at(first_win, self.l_person, won_ts)
        self.since = np.where(self.block == 1, first_win, self.since)
        self.is_cust = self.since < self.never
        # churn: 15 % of customers older than a year go quiet, then stop 1.5-11 months before as_of
        old = self.is_cust & (self.since < (self.today - 365) * DAY)
        churn = old & (rng.random(self.m) < 0.15)
        churn_day = rng.integers(self.today - 330, self.today - 45, self.m)
        self.churn = churn
        self.end = np.where(churn, churn_day * DAY + 18 * 3600, self.cutoff)
        self.intensity = rng.gamma(1.3, 1 / 1.3, self.m)  # some customers are simply busier

    def _campaigns(self, rng: np.random.Generator) -> pl.Series:
        nl = self.l_id.len()
        day = self.l_created // DAY
        d = pl.Series(day).cast(pl.Int32).cast(pl.Date)
        quarter = _concat(d.dt.year().cast(pl.String), "Q", d.dt.quarter().cast(pl.String))
        nthemes = np.array([len(t) for t in _THEMES], dtype=np.int64)
        theme_flat = [t for themes in _THEMES for t in themes]
        offset = np.concatenate([[0], np.cumsum(nthemes)[:-1]])
        ch = self.l_channel
        has = nthemes[ch] > 0
        ti = offset[ch] + rng.integers(0, 1 << 20, nl) % np.maximum(nthemes[ch], 1)
        camp = _concat(quarter, "-", _lookup(_CHANNEL_CN, ch), "-", _lookup(theme_flat, np.where(has, ti, 0)))
        camp = _nulls(camp, ~has)
        shows = np.flatnonzero(self.show_of >= 0)
        if shows.size:
            camp = camp.scatter(shows, self._show_names().gather(self.show_of[shows]))
        batches = np.flatnonzero(self.batch_of >= 0)
        if batches.size:
            camp = camp.scatter(batches, self._batch_names().gather(self.batch_of[batches]))
        return camp

    def _show_names(self) -> pl.Series:
        return pl.Series([f"{year}{_SHOWS[i][0]}" for i, _, _, year in self.shows], dtype=pl.String)

    def _batch_names(self) -> pl.Series:
        names = []
        for k, d in enumerate(self.batch_day.tolist()):
            day = _EPOCH.toordinal() + d
            when = date.fromordinal(day)
            names.append(f"{when.year}Q{(when.month - 1) // 3 + 1}-{_VENDORS[k % len(_VENDORS)]}-批次{k + 1}")
        return pl.Series(names, dtype=pl.String)

    # ---------------------------------------------------------------- which person is in which system
    def _memberships(self) -> None:
        rng = self._rng("members")
        m = self.m
        u = rng.random((m, 5))
        base = self.block == 0
        won_new = (self.block == 1) & self.is_cust
        b2b = self.b2b
        self.in_erp = (base & np.where(b2b, u[:, 0] < 0.95, u[:, 0] < 0.15)) | won_new
        self.in_crm = (base & b2b & (u[:, 1] < 0.85)) | (won_new & b2b)
        self.in_pos = base & ~b2b & ((u[:, 2] < 0.8) | ~self.in_erp)
        fan_p = np.where(base, np.where(b2b, 0.2, 0.35), np.where(self.block == 1, 0.15, 0.0))
        self.in_fans = (u[:, 3] < fan_p) | (self.block == 2)
        call_p = np.where(base, np.where(b2b, 0.22, 0.14), np.where(self.block == 1, 0.05, 0.0))
        call_lead = np.zeros(m, dtype=bool)
        call_lead[self.l_person[(self.l_channel == _CH["call_center"]) & (self.l_source == 0)]] = True
        self.in_calls = (u[:, 4] < call_p) | (self.block == 3) | call_lead
        # first lead per person (prospects' activity starts around there)
        first_lead = np.full(m, self.never, dtype=np.int64)
        np.minimum.at(first_lead, self.l_person, self.l_created)
        self.first_lead = first_lead

    def _first_rows(self, who: I64) -> I64:
        """Per person, the row of their first record in a system (-1: not in it)."""
        row = np.full(self.m, -1, dtype=np.int64)
        persons, first = np.unique(who, return_index=True)
        row[persons] = first
        return row

    def _second(self, rng: np.random.Generator, who: I64, created: I64, rate: float) -> tuple[I64, I64]:
        """Add a second record for ``rate`` of persons (registered twice); returns persons, created."""
        k = round(who.size * rate)
        again = who[rng.choice(who.size, size=k, replace=False)] if k else who[:0]
        later = np.minimum(created[again] + rng.integers(30, 400, k) * DAY, self.cutoff)
        allp = np.concatenate([who, again])
        allc = np.concatenate([created[who], later])
        order = np.argsort(allc, kind="stable")
        return allp[order], allc[order]

    # ---------------------------------------------------------------- 1. CRM
    def _crm(self) -> None:
        rng = self._rng("crm")
        # accounts (客户档案): B2B customers
        created = np.where(
            self.block == 0, self.since - rng.integers(0, 30, self.m) * DAY, self.since + rng.integers(0, 3600, self.m)
        )
        who, created_acc = self._second(rng, np.flatnonzero(self.in_crm), created, 0.01)
        order = np.argsort(created_acc, kind="stable")
        who, created_acc = who[order], created_acc[order]
        acc_id = _ids("KH", who.size, 8, start=100001)
        self.crm_acc_of = self._first_rows(who)  # activities and leads refer to a person's first account
        self.crm_acc_id = acc_id
        has = self.crm_acc_of >= 0
        self.crm_acc_created = np.where(has, created_acc[np.maximum(self.crm_acc_of, 0)], self.never)
        holders = np.flatnonzero(has)
        updated = self._after(rng, created_acc, "office")
        fmt = "%Y-%m-%d %H:%M:%S"
        accounts = pl.DataFrame(
            {
                "客户编号": acc_id,
                "客户名称": self._companies(rng, who, missing=0.01),
                "联系人": self._names(rng, who, typo=0.03, space=0.01),
                "手机": self._phones(rng, who, [70, 5, 10, 0, 15, 0], missing=0.04),
                "邮箱": self._emails(rng, who, missing=0.45),
                "行业": self._opt(rng, self.p_industry.gather(who), 0.15),
                "所属区域": _lookup(_REGIONS, self.region[who]),
                "城市": _lookup(_CITY, self.city[who]),
                "负责人": _lookup(self.reps, self.owner[who]),
                "创建时间": _fmt(created_acc, fmt),
                "最后修改时间": _fmt(updated, fmt),
            }
        )
        accounts = _with_dups(accounts, rng)
        accounts.write_csv(self._out("crm", "crm_accounts.csv"))
        self._count("crm.customers", accounts.height)
        self._add_truth("crm", acc_id, who)

        # leads entered in the CRM by sales (CRM-...)
        idx = np.flatnonzero(self.l_source == 0)
        p = self.l_person[idx]
        leads = pl.DataFrame(
            {
                "线索编号": self.l_id.gather(idx),
                "创建时间": _fmt(self.l_created[idx], fmt),
                "线索来源": self._channel_labels(rng, self.l_channel[idx], "crm"),
                "市场活动": self.l_campaign.gather(idx),
                "客户编号": self._acc_ref(p),
                "姓名": self._names(rng, p, typo=0.03, space=0.01),
                "手机": self._phones(rng, p, [70, 5, 10, 0, 15, 0], missing=0.03),
                "邮箱": self._emails(rng, p, missing=0.55),
                "公司名称": self._companies(rng, p, missing=0.1),
                "所属区域": self._opt(rng, _lookup(_REGIONS, self.region[p]), 0.02),
                "负责人": _lookup(self.reps, self.owner[p]),
                "线索状态": self._current_stage(idx),
            }
        )
        leads = _with_dups(leads, rng)
        leads.write_csv(self._out("crm", "crm_leads.csv"))
        self._count("crm.leads", leads.height)
        self._add_truth("crm", self.l_id.gather(idx), p)

        # follow-up activities: on accounts (decaying for churners) and on qualified leads
        owner, day = self._spread(
            rng,
            self.crm_acc_created[holders],
            self.end[holders],
            0.45 / 30 * self.intensity[holders],
            self.churn[holders],
        )
        a_person = holders[owner]
        a_ts = self._clip(rng, self._weekdays(rng, day, "office"), self.crm_acc_created[a_person], self.end[a_person])
        q = np.flatnonzero(self.l_reach[:, 1])
        nact = 1 + rng.poisson(np.where(self.l_reach[q, 3], 3.0, 1.0))
        lq = np.repeat(q, nact)
        lo = self.l_t[lq, 1] + 600
        last = np.minimum(np.where(self.l_reach[lq, 3], self.l_t[lq, 3], self.l_t[lq, 1]) + 14 * DAY, self.cutoff)
        l_ts = lo + (rng.random(lq.size) * (last - lo)).astype(np.int64)
        l_ts = self._clip(rng, self._weekdays(rng, l_ts // DAY, "office"), lo, last)
        person = np.concatenate([a_person, self.l_person[lq]])
        ts = np.concatenate([a_ts, l_ts])
        lead_ref = np.concatenate([np.full(a_person.size, -1, dtype=np.int64), lq])
        order = np.argsort(ts, kind="stable")
        person, ts, lead_ref = person[order], ts[order], lead_ref[order]
        n = ts.size
        has_acc = (self.crm_acc_of[person] >= 0) & (self.crm_acc_created[person] <= ts)
        kind = _pick(rng, n, _CRM_KIND_W)
        outcome = np.where(
            self.churn[person] & (ts > self.end[person] - 120 * DAY),
            _pick(rng, n, [1, 3, 0, 4, 0, 3]),
            _pick(rng, n, [5, 4, 3, 2, 1, 1]),
        )
        note_t = rng.integers(0, len(_CRM_NOTES), n)
        product = np.where(self.b2b[person], rng.integers(0, len(_B2B_PRODUCTS), n), 0)
        prod_name = _lookup([p[0] for p in _B2B_PRODUCTS], np.minimum(product, len(_B2B_PRODUCTS) - 1)).zip_with(
            pl.Series(self.b2b[person]), _lookup([p[0] for p in _B2C_PRODUCTS], rng.integers(0, 10, n))
        )
        note = pl.DataFrame({"t": _lookup(_CRM_NOTES, note_t), "p": prod_name}).select(
            pl.col("t").str.replace("{}", pl.col("p"), literal=True)
        )["t"]
        acts = pl.DataFrame(
            {
                "跟进记录编号": _ids("GJ", n, 9, start=1),
                "客户编号": _nulls(self.crm_acc_id.gather(np.maximum(self.crm_acc_of[person], 0)), ~has_acc),
                "线索编号": _nulls(self.l_id.gather(np.maximum(lead_ref, 0)), lead_ref < 0),
                "跟进方式": _lookup(_CRM_KINDS, kind),
                "跟进时间": _fmt(ts, "%Y-%m-%d %H:%M"),
                "跟进结果": _lookup(_CRM_OUTCOMES, outcome),
                "跟进内容": self._opt(rng, note, 0.2),
                "跟进人": _lookup(self.reps, self.owner[person]),
            }
        )
        acts = _with_dups(acts, rng)
        acts.write_csv(self._out("crm", "crm_activities.csv"))
        self._count("crm.interactions", acts.height)

        # the funnel history of every lead, from every source (the CRM imports them all)
        ev_lead, ev_stage = np.nonzero(self.l_reach)
        ev_ts = self.l_t[ev_lead, ev_stage]
        order = np.lexsort((ev_stage, ev_ts))
        ev_lead, ev_stage, ev_ts = ev_lead[order].astype(np.int64), ev_stage[order].astype(np.int64), ev_ts[order]
        english = self.l_created[ev_lead] < (self.start + 200) * DAY
        labels = self._stage_labels(rng, ev_stage, english)
        amount = pl.Series(np.where(ev_stage == 4, self.l_amount[ev_lead], np.nan)).fill_nan(None)
        events = pl.DataFrame(
            {
                "线索编号": self.l_id.gather(ev_lead),
                "阶段": labels,
                "变更时间": _fmt(ev_ts, fmt),
                "金额(元)": amount,
            }
        )
        events.write_csv(self._out("crm", "crm_lead_stage_history.csv"), float_precision=2)
        self._count("crm.lead_events", events.height)
        self._say(
            f"crm: {accounts.height:,} accounts, {leads.height:,} leads, {acts.height:,} activities, "
            f"{events.height:,} stage events"
        )

    def _weekdays(self, rng: np.random.Generator, day: I64, profile: str) -> I64:
        """Sales work on weekdays: most weekend days move to the Friday before."""
        wd = _weekday(day)
        move = (wd >= 5) & (rng.random(day.size) < 0.85)
        return self._ts(rng, np.where(move, day - (wd - 4), day), profile)

    def _acc_ref(self, person: I64) -> pl.Series:
        acc = self.crm_acc_of[person]
        return _nulls(self.crm_acc_id.gather(np.maximum(acc, 0)), acc < 0)

    def _current_stage(self, idx: I64) -> pl.Series:
        reach = self.l_reach[idx]
        cur = np.where(reach[:, 4], 4, np.where(reach[:, 5], 5, np.argmax(reach[:, :4] * np.arange(1, 5), axis=1)))
        return _lookup(["新线索", "MQL", "SQL", "商机", "赢单", "输单"], cur.astype(np.int64))

    def _stage_labels(self, rng: np.random.Generator, stage: I64, english: Bool) -> pl.Series:
        flat: list[str] = []
        en_off, zh_off, en_n, zh_n = [], [], [], []
        for en, zh in STAGE_LABELS.values():
            en_off.append(len(flat))
            en_n.append(len(en))
            flat.extend(en)
            zh_off.append(len(flat))
            zh_n.append(len(zh))
            flat.extend(zh)
        r = rng.integers(0, 1 << 20, stage.size)
        use_en = english & (rng.random(stage.size) < 0.8)
        eo, zo, en_k, zh_k = (np.array(a, dtype=np.int64) for a in (en_off, zh_off, en_n, zh_n))
        i = np.where(use_en, eo[stage] + r % en_k[stage], zo[stage] + r % zh_k[stage])
        return _lookup(flat, i)

    def _channel_labels(self, rng: np.random.Generator, channel: I64, source: str) -> pl.Series:
        """Channel written the way each system's users write it; ~0.5 % left empty."""
        per_source: dict[str, dict[str, tuple[str, ...]]] = {
            "crm": {
                "paid_search": ("百度推广", "百度推广", "百度SEM", "SEM "),
                "info_feed": ("抖音信息流", "巨量引擎"),
                "wechat": ("微信广告", "公众号", "广点通"),
                "organic": ("官网自然流量", "直接访问"),
                "trade_show": ("展会", "线下展会"),
                "purchased_list": ("外购名单",),
                "referral": ("转介绍", "转介绍", "老客户推荐", "Referral "),
                "call_center": ("400热线", "400热线", "呼叫中心", "400 hotline"),
            },
            "web": {
                "paid_search": ("baidu_sem", "baidu_sem", "Baidu SEM", "SEM "),
                "info_feed": ("douyin_ads", "Douyin Ads"),
                "wechat": ("wechat", "WeChat Ads"),
                "organic": ("organic", "organic", "SEO"),
            },
            "show": {"trade_show": ("展会", "展会", "Trade Show", "线下展会", "trade_show")},
            "spend": {c: CHANNEL_LABELS[c] for c in _CHANNELS},
        }
        table = per_source[source]
        flat: list[str | None] = []
        off = np.zeros(len(_CHANNELS), dtype=np.int64)
        cnt = np.ones(len(_CHANNELS), dtype=np.int64)
        for i, c in enumerate(_CHANNELS):
            labels = table.get(c, CHANNEL_LABELS[c][:1])
            off[i], cnt[i] = len(flat), len(labels)
            flat.extend(labels)
        pick = off[channel] + rng.integers(0, 1 << 20, channel.size) % cnt[channel]
        out = _lookup(flat, pick)
        if source == "spend":
            return out
        empty = np.zeros(channel.size, dtype=bool)
        empty[rng.choice(channel.size, size=channel.size // 200, replace=False)] = True
        return _nulls(out, empty)

    # ---------------------------------------------------------------- 2. ERP (SAP-style extract)
    def _erp(self) -> None:
        rng = self._rng("erp")
        who, created = self._second(rng, np.flatnonzero(self.in_erp), self.since, 0.01)
        kunnr = _ids("00", who.size, 8, start=10_000_001)
        first = self._first_rows(who)
        b2b = self.b2b[who]
        updated = self._after(rng, created, "office")
        customers = pl.DataFrame(
            {
                "KUNNR": kunnr,
                "NAME1": self._names(rng, who, typo=0.02),
                "NAME2": self._companies(rng, who, missing=0.02),
                "TELF1": self._phones(rng, who, [40, 35, 5, 10, 5, 5], missing=0.08),
                "SMTP_ADDR": self._emails(rng, who, missing=0.5),
                "STCD1": _nulls(self.id_number.gather(who), b2b | (rng.random(who.size) < 0.6)),
                "BRSCH": self.p_industry.gather(who),
                "VKBUR_TXT": _lookup(_REGIONS, self.region[who]),
                "ORT01": _lookup(_CITY, self.city[who]),
                "SALES_REP": _nulls(_lookup(self.reps, self.owner[who]), ~b2b & (rng.random(who.size) < 0.7)),
                "ERDAT": _fmt(created, "%Y%m%d"),
                "AEDAT": _fmt(updated, "%Y%m%d"),
            }
        )
        customers = _with_dups(customers, rng)
        customers.write_parquet(self._out("erp", "kna1_customers.parquet"))
        self._count("erp.customers", customers.height)
        self._add_truth("erp", kunnr, who)

        # orders: regular re-orders per customer, plus the order behind every won deal
        uniq = np.unique(who)
        rate = np.where(self.b2b[uniq], 0.25, 0.08) / 30 * self.intensity[uniq]
        owner, day = self._spread(rng, self.since[uniq], self.end[uniq], rate, self.churn[uniq])
        o_person = uniq[owner]
        o_ts = self._clip(rng, self._ts(rng, day, "office"), self.since[o_person], self.end[o_person])
        w_ts = self.l_t[:, 4] + rng.integers(1, 10, self.nl) * DAY + rng.integers(-3600, 3600, self.nl)
        won = np.flatnonzero(self.l_reach[:, 4] & (first[self.l_person] >= 0) & (w_ts <= self.cutoff))
        w_person, w_ts = self.l_person[won], w_ts[won]
        person = np.concatenate([o_person, w_person])
        ts = np.concatenate([o_ts, w_ts])
        forced = np.concatenate([np.full(o_person.size, np.nan), self.l_amount[won]])
        order = np.argsort(ts, kind="stable")
        person, ts, forced = person[order], ts[order], forced[order]
        n = ts.size
        b2b = self.b2b[person]
        bp = rng.integers(0, len(_B2B_PRODUCTS), n)
        lo = np.array([p[2] for p in _B2B_PRODUCTS])[bp]
        hi = np.array([p[3] for p in _B2B_PRODUCTS])[bp]
        b_qty = np.floor(np.exp(np.log(lo) + rng.random(n) * (np.log(hi + 1) - np.log(lo)))).astype(np.int64)
        b_price = np.array([p[1] for p in _B2B_PRODUCTS])[bp]
        cp = _pick(rng, n, _B2C_W)
        c_qty = 1 + _pick(rng, n, [90, 8, 2])
        c_price = np.array([p[1] for p in _B2C_PRODUCTS])[cp]
        qty = np.where(b2b, b_qty, c_qty).astype(np.float64)
        listed = np.where(b2b, b_price * b_qty, c_price * c_qty) * rng.uniform(0.82, 1.0, n)
        amount = np.round(np.where(np.isnan(forced), listed, forced), 2)
        product = _lookup([p[0] for p in _B2B_PRODUCTS], bp).zip_with(
            pl.Series(b2b), _lookup([p[0] for p in _B2C_PRODUCTS], cp)
        )
        age = (self.cutoff - ts) / DAY
        status = np.where(age < 7, _pick(rng, n, [6, 3, 1]), np.where(age < 30, _pick(rng, n, [1, 3, 6]), 2))
        status = np.where(rng.random(n) < 0.01, 3, status)
        orders = pl.DataFrame(
            {
                "VBELN": _ids("00", n, 8, start=20_000_001),
                "KUNNR": kunnr.gather(first[person]),
                "ERDAT": _fmt(ts, "%Y%m%d"),
                "NETWR": amount,
                "WAERK": _lookup(["CNY"], np.zeros(n, dtype=np.int64)),
                "ARKTX": product,
                "KWMENG": qty,
                "GBSTK": _lookup(["A", "B", "C", "已取消"], status.astype(np.int64)),
            }
        )
        orders = _with_dups(orders, rng)
        orders.write_parquet(self._out("erp", "vbak_orders.parquet"))
        self._count("erp.orders", orders.height)

        # contracts of B2B customers: every won B2B deal plus yearly framework contracts
        bb = uniq[self.b2b[uniq]]
        owner, day = self._spread(rng, self.since[bb], self.end[bb], np.full(bb.size, 1 / 365), self.churn[bb])
        c_person = np.concatenate([bb[owner], w_person[self.b2b[w_person]]])
        c_sign = np.concatenate(
            [
                self._clip(rng, self._ts(rng, day, "office"), self.since[bb[owner]], self.end[bb[owner]]),
                self.l_t[won[self.b2b[w_person]], 4],
            ]
        )
        c_amt = np.concatenate(
            [np.round(rng.lognormal(np.log(120_000), 0.7, owner.size), -2), self.l_amount[won[self.b2b[w_person]]]]
        )
        order = np.argsort(c_sign, kind="stable")
        c_person, c_sign, c_amt = c_person[order], c_sign[order], c_amt[order]
        n = c_sign.size
        term = np.array([30, 60, 90], dtype=np.int64)[_pick(rng, n, [5, 3, 2])]
        due = c_sign // DAY + term
        # payment behaviour: on time, late, partly, never (churners pay worse)
        behave = _pick_rows(rng, np.array([[72.0, 18, 4, 6], [40, 25, 12, 23]]), self.churn[c_person].astype(np.int64))
        delay = np.where(behave == 0, -rng.integers(0, 20, n), rng.integers(5, 120, n))
        paid_day = due + delay
        paid_ok = (behave < 3) & (paid_day <= self.today)
        share = np.where(behave == 2, rng.uniform(0.3, 0.8, n), 1.0)
        paid_amt = np.where(paid_ok, np.round(c_amt * share, 2), 0.0)
        paid_at = _nulls(_fmt_day(np.minimum(paid_day, self.today), "%Y%m%d"), ~paid_ok)
        contracts = pl.DataFrame(
            {
                "VBELN": _ids("00", n, 8, start=40_000_001),
                "KUNNR": kunnr.gather(first[c_person]),
                "VBEGDAT": _fmt(c_sign, "%Y%m%d"),
                "NETWR": c_amt,
                "ZTERM": _lookup(["Z030", "Z060", "Z090"], (term // 30 - 1).astype(np.int64)),
                "NETDT": _fmt_day(due, "%Y%m%d"),
                "ZPAID_AMT": paid_amt,
                "AUGDT": paid_at,
                "WAERK": _lookup(["CNY"], np.zeros(n, dtype=np.int64)),
            }
        )
        contracts.write_parquet(self._out("erp", "contracts.parquet"))
        self._count("erp.contracts", contracts.height)
        self._say(f"erp: {customers.height:,} customers, {orders.height:,} orders, {contracts.height:,} contracts")

    # ---------------------------------------------------------------- 3. web forms (JSON Lines)
    def _web_forms(self) -> None:
        rng = self._rng("web_forms")
        idx = np.flatnonzero(self.l_source == 1)
        p = self.l_person[idx]
        n = idx.size
        form = _pick(rng, n, [45, 25, 30])
        df = pl.DataFrame(
            {
                "id": self.l_id.gather(idx),
                "submitted_at": _fmt(self.l_created[idx], "%Y-%m-%dT%H:%M:%S+08:00"),
                "form": _lookup(_FORMS, form),
                "page": _nulls(_lookup(_PAGES, rng.integers(0, len(_PAGES), n)), form == 2),
                "utm_source": self._channel_labels(rng, self.l_channel[idx], "web"),
                "utm_campaign": self.l_campaign.gather(idx),
                "name": self._names(rng, p, typo=0.02, space=0.01),
                "mobile": self._phones(rng, p, [80, 4, 6, 0, 4, 6], missing=0.005),
                "email": self._emails(rng, p, missing=0.45),
                "company": self._companies(rng, p, missing=0.2),
                "province": _lookup(_PROVINCE, self.city[p]),
                "region": _lookup(_REGIONS, self.region[p]),
                "message": self._opt(
                    rng,
                    _lookup(
                        ("想了解报价", "请联系我", "需要酒店方案", "门店地址在哪", "代理加盟咨询"),
                        rng.integers(0, 5, n),
                    ),
                    0.6,
                ),
            }
        )
        df = _with_dups(df, rng)
        df.write_ndjson(self._out("web_forms", "form_submissions.jsonl"))
        self._count("web_forms.leads", df.height)
        self._add_truth("web_forms", self.l_id.gather(idx), p)
        self._say(f"web_forms: {df.height:,} submissions")

    # ---------------------------------------------------------------- 4. WeChat (JSON arrays)
    def _wechat(self) -> None:
        rng = self._rng("wechat")
        begin = np.where(
            self.is_cust,
            self.since - rng.integers(-30, 90, self.m) * DAY,
            np.where(
                self.first_lead < self.never,
                self.first_lead - rng.integers(-20, 30, self.m) * DAY,
                (self.today - rng.integers(30, 1100, self.m)) * DAY,
            ),
        )
        floor = self.today - 6 * 365 + rng.integers(0, 200, self.m)
        begin = self._ts(rng, np.minimum(np.maximum(begin // DAY, floor), self.today), "online")
        who = np.flatnonzero(self.in_fans)
        who = who[np.argsort(begin[who], kind="stable")]
        n = who.size
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        openid = _concat("o", _random_strings(rng, n, 27, alphabet + "-_"))
        anon = self.block[who] == 2
        nick = _concat(
            _lookup(_NICK_A, rng.integers(0, len(_NICK_A), n)), _lookup(_NICK_B, rng.integers(0, len(_NICK_B), n))
        )
        fans = pl.DataFrame(
            {
                "openid": openid,
                "unionid": _concat("oU", _random_strings(rng, n, 26, "abcdefghijklmnopqrstuvwxyz0123456789")),
                "nickname": nick,
                "remark": _nulls(self._names(rng, who, typo=0.03), anon | (rng.random(n) < 0.3)),
                "mobile": _nulls(self._phones(rng, who, [75, 10, 5, 5, 0, 5], missing=0.03), anon),
                "province": _lookup(_PROVINCE, self.city[who]),
                "city": _nulls(_lookup(_CITY, self.city[who]), rng.random(n) < 0.1),
                "subscribe_time": _fmt(begin[who], "%Y-%m-%dT%H:%M:%S"),
                "subscribe_scene": _lookup(
                    ("ADD_SCENE_QR_CODE", "ADD_SCENE_SEARCH", "ADD_SCENE_PROFILE_CARD"), _pick(rng, n, [6, 3, 1])
                ),
            }
        )
        fans.write_json(self._out("wechat", "fans.json"))
        self._count("wechat.customers", fans.height)
        self._add_truth("wechat", openid, who)

        # events: the subscribe itself, then messages / menu clicks / article views / WeCom chats
        rate = np.where(self.b2b[who], 0.38, 0.6) / 30 * self.intensity[who]
        owner, day = self._spread(rng, begin[who], self.end[who], rate, self.churn[who])
        ev_fan = np.concatenate([np.arange(n, dtype=np.int64), owner])
        ev_ts = self._clip(rng, self._ts(rng, day, "online"), begin[who][owner], self.end[who][owner])
        ts = np.concatenate([begin[who], ev_ts])
        ev = np.concatenate([np.zeros(n, dtype=np.int64), 1 + _pick(rng, owner.size, [40, 20, 25, 15])])
        quit_fan = np.flatnonzero(self.churn[who] & (rng.random(n) < 0.5))
        ev_fan = np.concatenate([ev_fan, quit_fan])
        ts = np.concatenate([ts, self.end[who][quit_fan] + 3600])
        ev = np.concatenate([ev, np.full(quit_fan.size, 5, dtype=np.int64)])
        keep = ts >= self.lo
        ev_fan, ts, ev = ev_fan[keep], ts[keep], ev[keep]
        ev = np.where((ev == 4) & ~self.b2b[who][ev_fan] & (rng.random(ev.size) < 0.5), 1, ev)
        order = np.argsort(ts, kind="stable")
        ev_fan, ts, ev = ev_fan[order], ts[order], ev[order]
        total = ts.size
        flat: list[str | None] = [None]
        off = np.zeros(len(_WX_EVENTS), dtype=np.int64)
        cnt = np.ones(len(_WX_EVENTS), dtype=np.int64)
        for i, e in enumerate(_WX_EVENTS):
            if e in _WX_CONTENT:
                off[i], cnt[i] = len(flat), len(_WX_CONTENT[e])
                flat.extend(_WX_CONTENT[e])
        ci = off[ev] + rng.integers(0, 1 << 20, total) % cnt[ev]
        content = pl.DataFrame(
            {"c": _lookup(flat, ci), "a": pl.Series(rng.integers(1000, 9999, total)).cast(pl.String)}
        ).select(pl.col("c").str.replace("{}", pl.col("a"), literal=True))["c"]
        account = np.where(ev == 4, 1 + (rng.random(total) < 0.2), 0).astype(np.int64)
        events = pl.DataFrame(
            {
                "msg_id": pl.Series(7_100_000_000_000_000_000 + np.arange(total, dtype=np.int64) * 977).cast(pl.String),
                "openid": openid.gather(ev_fan),
                "account": _lookup(("公众号", "企业微信", "WeCom"), account),
                "event": _lookup(_WX_EVENTS, ev),
                "create_time": _fmt(ts, "%Y-%m-%dT%H:%M:%S"),
                "content": content,
                "staff": _nulls(_lookup(self.reps, self.owner[who][ev_fan]), ev != 4),
            }
        )
        events = _with_dups(events, rng)
        pages = max(1, -(-events.height // _JSON_PAGE))
        for k in range(pages):
            events.slice(k * _JSON_PAGE, _JSON_PAGE).write_json(self._out("wechat", f"events_{k + 1:04d}.json"))
        self._count("wechat.interactions", events.height)
        self._say(f"wechat: {fans.height:,} fans, {events.height:,} events in {pages} page(s)")

    # ---------------------------------------------------------------- 5. call center (; CSV)
    def _call_center(self) -> None:
        rng = self._rng("call_center")
        who = np.flatnonzero(self.in_calls)
        begin = np.where(self.is_cust[who], self.since[who], np.minimum(self.first_lead[who], self.cutoff - DAY))
        begin = np.where(self.block[who] == 3, rng.integers(self.start, self.today, who.size) * DAY, begin)
        rate = np.where(self.is_cust[who], 0.36, 0.18) / 30 * self.intensity[who]
        owner, day = self._spread(rng, begin, self.end[who], rate, np.zeros(who.size, dtype=bool))
        person = who[owner]
        ts = self._clip(rng, self._ts(rng, day, "call"), begin[owner], self.end[person])
        lead = np.full(person.size, -1, dtype=np.int64)
        # the hotline call behind every CRM lead whose channel is the 400 line
        cl = np.flatnonzero((self.l_channel == _CH["call_center"]) & (self.l_source == 0))
        person = np.concatenate([person, self.l_person[cl]])
        ts = np.concatenate([ts, self.l_created[cl] - rng.integers(120, 1800, cl.size)])
        lead = np.concatenate([lead, cl])
        order = np.argsort(ts, kind="stable")
        person, ts, lead = person[order], ts[order], lead[order]
        n = ts.size
        late = self.churn[person] & (ts > self.end[person] - 150 * DAY)
        ctype = np.where(
            lead >= 0,
            0,
            np.where(late, _pick(rng, n, [15, 40, 30, 5, 10]), _pick(rng, n, [30, 8, 30, 12, 20])),
        )
        outbound = ctype == 4
        result = np.where(
            ctype == 1,
            _pick(rng, n, [40, 35, 20, 5, 0]),
            np.where(outbound, _pick(rng, n, [50, 0, 15, 0, 35]), _pick(rng, n, [70, 5, 10, 12, 3])),
        )
        number = pl.Series(self.phone[person]).cast(pl.String)
        number = pl.select(
            pl.when(pl.lit(pl.Series(self.zero_prefix[person])))
            .then(pl.concat_str([pl.lit("0"), pl.lit(number)]))
            .otherwise(pl.lit(number))
        ).to_series()
        flat: list[str] = []
        off = np.zeros(len(_CALL_TYPES), dtype=np.int64)
        cnt = np.zeros(len(_CALL_TYPES), dtype=np.int64)
        for i, notes in enumerate(_CALL_NOTES):
            off[i], cnt[i] = len(flat), len(notes)
            flat.extend(notes)
        ni = off[ctype] + rng.integers(0, 1 << 20, n) % cnt[ctype]
        prod = _lookup([p[0] for p in _B2C_PRODUCTS], _pick(rng, n, _B2C_W))
        note = pl.DataFrame({"t": _lookup(flat, ni), "p": prod}).select(
            pl.col("t").str.replace("{}", pl.col("p"), literal=True)
        )["t"]
        dur = np.where(result == 4, 0, np.round(rng.lognormal(np.log(180), 0.7, n))).astype(np.int64)
        calls = pl.DataFrame(
            {
                "call_id": _concat("CL", _fmt(ts, "%Y%m%d"), _ids("", n, 7)),
                "direction": _lookup(("IN", "OUT"), outbound.astype(np.int64)),
                "customer_number": number,
                "start_time": _fmt(ts, "%Y/%m/%d %H:%M:%S"),
                "duration_sec": dur,
                "queue": _lookup(_CALL_QUEUE, ctype),
                "call_type": _lookup(_CALL_TYPES, ctype),
                "disposition": _lookup(_CALL_RESULTS, result),
                "agent_id": _concat("A", pl.Series(1000 + rng.integers(0, max(20, self.n // 400), n)).cast(pl.String)),
                "lead_id": _nulls(self.l_id.gather(np.maximum(lead, 0)), lead < 0),
                "remark": self._opt(rng, note, 0.15),
            }
        )
        calls = _with_dups(calls.with_columns(_fmt(ts, "%Y%m").alias("_m")), rng)
        for (key,), part in calls.partition_by("_m", as_dict=True, maintain_order=True).items():
            part.drop("_m").write_csv(self._out("call_center", f"calls_{key}.csv"), separator=";")
        self._count("call_center.interactions", calls.height)
        self._add_truth("call_center", number, person)
        self._say(f"call_center: {calls.height:,} calls")

    # ---------------------------------------------------------------- 6. POS (CSV with BOM)
    def _pos(self) -> None:
        rng = self._rng("pos")
        stores: list[tuple[str, int]] = []
        for ci, (city, *_rest) in enumerate(_CITIES):
            k = 1 + int(_CITY_W[ci] >= 3) + int(_CITY_W[ci] >= 6)
            stores.extend((f"{city}{_MALLS[(ci + j) % len(_MALLS)]}", ci) for j in range(k))
        store_city = np.array([c for _, c in stores], dtype=np.int64)
        first_store = np.array([np.flatnonzero(store_city == c)[0] for c in range(len(_CITIES))], dtype=np.int64)
        n_store = np.bincount(store_city, minlength=len(_CITIES))
        who, created = self._second(rng, np.flatnonzero(self.in_pos), self.since, 0.02)
        n = who.size
        card = _ids("86", n, 10, start=1_000_000_001)
        home = first_store[self.city[who]] + rng.integers(0, 1 << 20, n) % n_store[self.city[who]]
        updated = self._after(rng, created, "retail")
        members = pl.DataFrame(
            {
                "会员卡号": card,
                "会员姓名": self._names(rng, who, typo=0.03),
                "手机号": self._phones(rng, who, [85, 0, 10, 0, 5, 0], missing=0.01),
                "邮箱": self._emails(rng, who, missing=0.85),
                "性别": self._opt(rng, _lookup(("男", "女"), (self.gender[who] == "女").astype(np.int64)), 0.2),
                "生日": self._opt(rng, _fmt_day(self.birth[who], "%Y-%m-%d"), 0.5),
                "开卡门店": _lookup([s for s, _ in stores], home),
                "城市": _lookup(_CITY, self.city[who]),
                "开卡日期": _fmt(created, "%Y-%m-%d"),
                "最近更新": _fmt(updated, "%Y-%m-%d %H:%M:%S"),
            }
        )
        members = _with_dups(members, rng)
        members.write_csv(self._out("pos", "members.csv"), include_bom=True)
        self._count("pos.customers", members.height)
        self._add_truth("pos", card, who)

        owner, day = self._spread(rng, created, self.end[who], 0.18 / 30 * self.intensity[who], self.churn[who])
        ts = self._clip(rng, self._ts(rng, day, "retail"), created[owner], self.end[who[owner]])
        order = np.argsort(ts, kind="stable")
        owner, ts = owner[order], ts[order]
        k = ts.size
        store = np.where(rng.random(k) < 0.85, home[owner], rng.integers(0, len(stores), k))
        prod = _pick(rng, k, _B2C_W)
        qty = 1 + _pick(rng, k, [88, 9, 3])
        price = np.array([p[1] for p in _B2C_PRODUCTS])[prod]
        amount = np.round(price * qty * np.where(rng.random(k) < 0.3, rng.uniform(0.7, 0.95, k), 1.0), 2)
        refund = rng.random(k) < 0.015
        sales = pl.DataFrame(
            {
                "小票号": _concat("S", pl.Series(store + 101).cast(pl.String), _fmt(ts, "%Y%m%d"), _ids("", k, 7)),
                "会员卡号": card.gather(owner),
                "交易时间": _fmt(ts, "%Y-%m-%d %H:%M:%S"),
                "门店": _lookup([s for s, _ in stores], store),
                "商品名称": _lookup([p[0] for p in _B2C_PRODUCTS], prod),
                "数量": qty,
                "实收金额": amount,
                "交易类型": _lookup(("销售", "退货"), refund.astype(np.int64)),
            }
        )
        sales = _with_dups(sales, rng)
        sales.write_csv(self._out("pos", "sales.csv"), include_bom=True, float_precision=2)
        self._count("pos.orders", sales.height)
        self._say(f"pos: {members.height:,} members, {sales.height:,} sales")

    # ---------------------------------------------------------------- 7. purchased list (xlsx)
    def _purchased(self) -> None:
        import xlsxwriter

        rng = self._rng("purchased_leads")
        idx = np.flatnonzero(self.l_source == 3)
        p = self.l_person[idx]
        n = idx.size
        day = self.l_created[idx] // DAY
        text_cols: dict[str, list[str | None]] = {
            "线索编号": self.l_id.gather(idx).to_list(),
            "姓名": self._names(rng, p, typo=0.04).to_list(),
            "手机号码": self._phones(rng, p, [90, 0, 5, 0, 5, 0], missing=0.0, invalid=0.025).to_list(),
            "邮箱": self._emails(rng, p, missing=0.4, upper=0.02).to_list(),
            "公司名称": self._companies(rng, p, missing=0.05).to_list(),
            "职位": self._opt(rng, self.title.gather(p), 0.3).to_list(),
            "行业": self.p_industry.gather(p).to_list(),
            "省份": _lookup(_PROVINCE, self.city[p]).to_list(),
            "城市": _lookup(_CITY, self.city[p]).to_list(),
        }
        after: dict[str, list[str | None]] = {
            "名单批次": self.l_campaign.gather(idx).to_list(),
            "供应商": _lookup(_VENDORS, self.batch_of[idx] % len(_VENDORS)).to_list(),
        }
        header = [*text_cols, "入库日期", *after]
        columns = [*text_cols.values(), *after.values()]
        where = [*range(len(text_cols)), *range(len(text_cols) + 1, len(header))]
        jd = len(text_cols)
        # the import date: real date cells mostly, bare serial numbers and Chinese text in some rows
        how = _pick(rng, n, [65, 25, 10]).tolist()
        text = _fmt_day(day, "%Y年%-m月%-d日").to_list()
        serial = (day - _EXCEL_EPOCH_DAYS).tolist()
        extra = round(n * 0.005)  # vendors' lists repeat a few rows
        rows = np.sort(np.concatenate([np.arange(n), rng.choice(n, size=extra, replace=False)]), kind="stable")

        path = self._out("purchased_leads", "purchased_leads.xlsx")
        wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})  # rows stream to disk
        wb.set_properties({"created": datetime(self.as_of.year, self.as_of.month, self.as_of.day), "author": "市场部"})
        ws = wb.add_worksheet("线索名单")
        ws.set_column(0, len(header) - 1, 14)
        ws.freeze_panes(1, 0)
        ws.write_row(0, 0, header, wb.add_format({"bold": True, "bg_color": "#DDEBF7"}))
        datefmt = wb.add_format({"num_format": "yyyy-mm-dd"})
        write_string, write_number = ws.write_string, ws.write_number
        # Excel cells are written one by one: xlsxwriter has no columnar write (the one Python loop)
        for r, i in enumerate(rows.tolist(), start=1):
            for j, col in zip(where, columns, strict=True):
                value = col[i]
                if value is not None:
                    write_string(r, j, value)
            if how[i] == 0:
                write_number(r, jd, serial[i], datefmt)
            elif how[i] == 1:
                write_number(r, jd, serial[i])
            else:
                write_string(r, jd, text[i])
        wb.close()
        n = rows.size
        self._count("purchased_leads.leads", n)
        self._add_truth("purchased_leads", self.l_id.gather(idx), p)
        self._say(f"purchased_leads: {n:,} rows")

    # ---------------------------------------------------------------- 8. trade shows (GBK CSV)
    def _trade_show(self) -> None:
        rng = self._rng("trade_show")
        idx = np.flatnonzero(self.l_source == 2)
        p = self.l_person[idx]
        n = idx.size
        interest = np.where(
            self.b2b[p], rng.integers(0, len(_B2B_PRODUCTS), n), len(_B2B_PRODUCTS) + _pick(rng, n, _B2C_W)
        )
        df = pl.DataFrame(
            {
                "登记编号": self.l_id.gather(idx),
                "登记时间": _fmt(self.l_created[idx], "%Y/%-m/%-d %H:%M"),
                "展会名称": self.l_campaign.gather(idx),
                "来源": self._channel_labels(rng, self.l_channel[idx], "show"),
                "姓名": self._names(rng, p, typo=0.04),
                "手机": self._phones(rng, p, [60, 0, 25, 0, 15, 0], missing=0.05),
                "邮箱": self._emails(rng, p, missing=0.6),
                "单位名称": self._companies(rng, p, missing=0.08),
                "职务": self._opt(rng, self.title.gather(p), 0.25),
                "所在省份": _lookup(_PROVINCE, self.city[p]),
                "区域": _lookup(_REGIONS, self.region[p]),
                "意向产品": _lookup([x[0] for x in _B2B_PRODUCTS] + [x[0] for x in _B2C_PRODUCTS], interest),
                "接待人": self._opt(rng, _lookup(self.reps, self.owner[p]), 0.1),
            }
        )
        df = _with_dups(df.with_columns(pl.Series("_s", self.show_of[idx])), rng)
        for i, (si, first, _len, _year) in enumerate(self.shows):
            part = df.filter(pl.col("_s") == i).drop("_s")
            if part.height == 0:
                continue
            when = date.fromordinal(_EPOCH.toordinal() + first)
            text = part.write_csv(line_terminator="\r\n")  # saved by Excel on Windows: GBK, CRLF
            self._out("trade_show", f"{when:%Y-%m}_{_SHOW_SLUG[si]}.csv").write_bytes(text.encode("gbk"))
        self._count("trade_show.leads", df.height)
        self._add_truth("trade_show", self.l_id.gather(idx), p)
        self._say(f"trade_show: {df.height:,} registrations at {len(self.shows)} shows")

    # ---------------------------------------------------------------- 9. marketing spend
    def _marketing(self) -> None:
        rng = self._rng("marketing")
        days = np.arange(self.start, self.today, dtype=np.int64)  # spend is reported up to yesterday
        nd = days.size
        lead_day = self.l_created // DAY - self.start
        ch_rows: list[pl.DataFrame] = []
        for c, name in enumerate(_CHANNELS):
            if name in ("trade_show", "purchased_list"):
                continue
            sel = (self.l_channel == c) & (lead_day < nd)
            count = np.bincount(lead_day[sel], minlength=nd).astype(np.float64)
            smooth = pl.Series(count).rolling_mean(14, min_samples=1).to_numpy()
            themes = _THEMES[c] or ("",)
            k = len(themes)
            d = np.repeat(days, k)
            th = np.tile(np.arange(k), nd)
            cost = np.round(_CPL[c] * np.maximum(np.repeat(smooth, k), 0.2) / k * rng.lognormal(0, 0.25, d.size), 2)
            dd = pl.Series(d).cast(pl.Int32).cast(pl.Date)
            quarter = _concat(dd.dt.year().cast(pl.String), "Q", dd.dt.quarter().cast(pl.String))
            camp = _concat(quarter, "-", _CHANNEL_CN[c], "-", _lookup(themes, th))
            if not _THEMES[c]:
                camp = _nulls(camp, np.ones(d.size, dtype=bool))
            clicks = np.where(_CPC[c] > 0, np.round(cost / max(_CPC[c], 1e-9) * rng.uniform(0.8, 1.2, d.size)), np.nan)
            ch_rows.append(self._spend_frame(rng, d, c, camp, cost, clicks))
        # trade shows: booth, build and travel, booked over the show days
        for i, (_si, first, length, _year) in enumerate(self.shows):
            leads_here = int((self.show_of == i).sum())
            total = _CPL[_CH["trade_show"]] * max(leads_here, 5) * rng.lognormal(0, 0.2)
            share = np.array([0.6] + [0.4 / (length - 1)] * (length - 1))
            d = first + np.arange(length, dtype=np.int64)
            camp = self._show_names().gather(np.full(length, i, dtype=np.int64))
            ch_rows.append(
                self._spend_frame(rng, d, _CH["trade_show"], camp, np.round(total * share, 2), np.full(length, np.nan))
            )
        # purchased lists: paid per record on the purchase day
        names = self._batch_names()
        for k, d0 in enumerate(self.batch_day.tolist()):
            rows = int((self.batch_of == k).sum())
            cost = np.array([round(rows * float(rng.uniform(35, 70)) + 2000, 2)])  # priced per record
            ch_rows.append(
                self._spend_frame(
                    rng,
                    np.array([d0], dtype=np.int64),
                    _CH["purchased_list"],
                    names.gather([k]),
                    cost,
                    np.array([np.nan]),
                )
            )
        spend = pl.concat(ch_rows).sort("_d", "_c", maintain_order=True).drop("_d", "_c")
        spend.write_csv(self._out("marketing", "spend_daily.csv"), float_precision=2)
        self._count("marketing.marketing_spend", spend.height)
        self._say(f"marketing: {spend.height:,} spend rows")

    def _spend_frame(
        self, rng: np.random.Generator, d: I64, c: int, camp: pl.Series, cost: F64, clicks: F64
    ) -> pl.DataFrame:
        n = d.size
        ch = np.full(n, c, dtype=np.int64)
        return pl.DataFrame(
            {
                "日期": _fmt_day(d, "%Y年%-m月%-d日"),
                "渠道": self._channel_labels(rng, ch, "spend"),
                "推广计划": camp,
                "展现量": pl.Series(np.round(clicks * rng.uniform(20, 60, n))).fill_nan(None).cast(pl.Int64),
                "点击量": pl.Series(clicks).fill_nan(None).cast(pl.Int64),
                "消耗(元)": cost,
                "_d": d,
                "_c": ch,
            }
        )
