"""The reference tables every part of the demo shares: cities, products, channels, stages, shows, vendors."""

from __future__ import annotations

import numpy as np

# city, province, region (sales 大区), ID-card area code, weight, landline area code
CITIES: tuple[tuple[str, str, str, int, int, str], ...] = (
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
CITY = tuple(c[0] for c in CITIES)
PROVINCE = tuple(c[1] for c in CITIES)
REGIONS = ("华东", "华北", "华南", "华中", "西南", "西北", "东北")
CITY_REGION = np.array([REGIONS.index(c[2]) for c in CITIES], dtype=np.int64)
CITY_AREA = np.array([c[3] for c in CITIES], dtype=np.int64)
CITY_W = np.array([c[4] for c in CITIES], dtype=np.float64)
CITY_TEL = tuple(c[5] for c in CITIES)

# name, unit price, min qty, max qty
B2B_PRODUCTS: tuple[tuple[str, float, int, int], ...] = (
    ("酒店智能客控系统", 3200.0, 20, 300),
    ("智能门锁 X1 工程版", 1350.0, 20, 500),
    ("楼宇可视对讲系统", 85000.0, 1, 3),
    ("全屋智能样板间方案", 48000.0, 1, 4),
    ("智能照明控制模块", 420.0, 10, 200),
    ("年度维保服务", 16000.0, 1, 2),
)
B2C_PRODUCTS: tuple[tuple[str, float], ...] = (
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
B2C_W = np.array([14, 8, 10, 9, 7, 10, 6, 12, 6, 18], dtype=np.float64)

# canonical lead channels (all of them also carry marketing spend)
CHANNELS = (
    "paid_search",
    "info_feed",
    "wechat",
    "organic",
    "trade_show",
    "purchased_list",
    "referral",
    "call_center",
)
CH = {c: i for i, c in enumerate(CHANNELS)}
CHANNEL_CN = ("百度", "抖音", "微信", "官网", "展会", "名单", "转介绍", "400")
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
THEMES: tuple[tuple[str, ...], ...] = (
    ("品牌词", "产品词", "竞品词"),
    ("智能门锁", "全屋智能"),
    ("公众号推文", "朋友圈广告"),
    ("内容营销",),
    (),
    (),
    ("老带新",),
    (),
)

# CRM funnel stage labels: the old (Salesforce) CRM wrote English, the current one Chinese
STAGE_LABELS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lead": (("Lead",), ("线索", "新线索")),
    "mql": (("MQL",), ("MQL", "市场认可线索")),
    "sql": (("SQL",), ("SQL", "销售认可线索")),
    "opportunity": (("Qualified to buy", "Opportunity"), ("商机",)),
    "won": (("Closed Won",), ("赢单", "成交")),
    "lost": (("Closed Lost",), ("输单", "丢单")),
}

# (name, month, day, length in days, city)
SHOWS: tuple[tuple[str, int, int, int, str], ...] = (
    ("AWE中国家电及消费电子博览会", 3, 14, 4, "上海"),
    ("上海国际酒店及餐饮业博览会", 4, 1, 4, "上海"),
    ("中国(广州)国际建筑装饰博览会", 7, 8, 4, "广州"),
    ("深圳国际智能家居展", 8, 26, 3, "深圳"),
    ("中国国际住宅产业博览会", 10, 15, 3, "北京"),
    ("成都国际酒店用品展", 11, 20, 3, "成都"),
)
SHOW_SLUG = ("awe", "hotelex", "cbd", "smarthome", "chinahouse", "chengdu")
VENDORS = ("数聚科技", "客源宝", "企查名录", "拓客云")

# a name's last character and one that a typist mixes it up with
SIMILAR = dict(
    zip(
        "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚华玉兰红林辉斌宇浩凯健俊慧佳欣婷晨鹏文波志东成峰飞宁琴云倩梅颖",
        "玮方那民婧莉蔷垒君阳永燕洁鹃滔铭朝琇夏萍钢桦钰岚虹琳晖彬羽皓恺建峻惠嘉馨亭辰朋雯博智冬诚锋菲凝芹芸茜玫莹",
        strict=True,
    )
)
