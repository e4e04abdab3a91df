"""What a coded value is called on screen: dimension → code → {zh, en}, one dictionary for every page,
extended by the company's own ``[labels.<dimension>]`` in cockpit.toml and its sources' titles.

A code nobody named is shown as it is (in both languages): a company's new channel still shows.
Exports keep the codes; only what is drawn is labelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Text = Mapping[str, str]  # {"zh": ..., "en": ...}


def _t(zh: str, en: str) -> dict[str, str]:
    return {"zh": zh, "en": en}


VALUES: dict[str, dict[str, dict[str, str]]] = {
    "channel": {
        "paid_search": _t("搜索推广", "Paid search"),
        "info_feed": _t("信息流广告", "In-feed ads"),
        "wechat": _t("微信", "WeChat"),
        "organic": _t("自然流量", "Organic"),
        "trade_show": _t("展会", "Trade show"),
        "purchased_list": _t("外购名单", "Purchased list"),
        "referral": _t("转介绍", "Referral"),
        "call_center": _t("400 热线", "Call center"),
        "wecom": _t("企业微信", "WeCom"),
        "direct_sales": _t("销售跟进", "Direct sales"),
        "unknown": _t("未知渠道", "Unknown"),
        "(all)": _t("全部渠道", "All channels"),
    },
    "stage": {
        "lead": _t("线索", "Lead"),
        "mql": _t("市场认可线索 MQL", "MQL"),
        "sql": _t("销售认可线索 SQL", "SQL"),
        "opportunity": _t("商机", "Opportunity"),
        "won": _t("赢单", "Won"),
        "lost": _t("输单", "Lost"),
    },
    "lifecycle": {
        "active": _t("活跃客户", "Active"),
        "lapsed": _t("沉睡客户", "Lapsed"),
        "won": _t("已成交", "Won"),
        "opportunity": _t("商机", "Opportunity"),
        "lead": _t("线索", "Lead"),
        "contact": _t("联系人", "Contact"),
    },
    "rfm": {  # a golden customer's RFM segment (derived/golden.py)
        "champion": _t("重要价值", "Champion"),
        "loyal": _t("忠诚", "Loyal"),
        "at_risk": _t("流失风险", "At risk"),
        "new": _t("新客", "New"),
        "hibernating": _t("沉睡", "Hibernating"),
        "needs_attention": _t("需关注", "Needs attention"),
    },
    "value_tier": {  # a golden customer's value tier (derived/golden.py)
        "high": _t("高价值", "High value"),
        "medium": _t("中价值", "Medium value"),
        "low": _t("低价值", "Low value"),
    },
    "category": {  # the Customer 360 timeline's kinds of event
        "lead": _t("线索", "Lead"),
        "stage": _t("阶段变化", "Stage change"),
        "order": _t("订单", "Order"),
        "contract": _t("合同", "Contract"),
        "payment": _t("回款", "Payment"),
        "interaction": _t("互动", "Interaction"),
    },
    "kind": {  # a timeline event's kind: the query's own, and the demo sources' interaction kinds
        "lead": _t("新线索", "New lead"),
        "signed": _t("签约", "Signed"),
        "paid": _t("回款", "Paid"),
        "order": _t("订单", "Order"),
        "click": _t("点击", "Click"),
        "view": _t("浏览", "View"),
        "subscribe": _t("关注", "Subscribe"),
        "unsubscribe": _t("取消关注", "Unsubscribe"),
        "text": _t("消息", "Message"),
        "wecom_chat": _t("企业微信聊天", "WeCom chat"),
        "complaint": _t("投诉", "Complaint"),
        "inquiry": _t("咨询", "Inquiry"),
        "installation": _t("安装", "Installation"),
        "outbound follow-up": _t("外呼跟进", "Outbound follow-up"),
        "service request": _t("服务请求", "Service request"),
    },
    "outcome": {
        "Callback Scheduled": _t("已约回电", "Callback scheduled"),
        "Escalated": _t("已升级", "Escalated"),
        "No Answer": _t("未接通", "No answer"),
        "Resolved": _t("已解决", "Resolved"),
        "Transferred": _t("已转接", "Transferred"),
    },
    "consent": {
        "yes": _t("已同意营销", "Consented"),
        "no": _t("未同意营销", "No consent"),
        "unknown": _t("同意未知", "Consent unknown"),
    },
    "risk_band": {
        "high": _t("高风险", "High risk"),
        "medium": _t("中风险", "Medium risk"),
        "low": _t("低风险", "Low risk"),
    },
    "segment": {
        "high": _t("高价值", "High value"),
        "mid": _t("中价值", "Mid value"),
        "low": _t("低价值", "Low value"),
        "none": _t("近一年无消费", "No purchase in a year"),
    },
    "record_kind": {"customer": _t("客户", "Customer"), "lead": _t("线索", "Lead")},
    "match_rule": {
        "single": _t("仅此一条", "Only record"),
        "probabilistic": _t("概率匹配", "Probabilistic match"),
        "exact:customer_ref": _t("同系统客户编号", "Same customer reference"),
        "exact:email": _t("邮箱相同", "Same e-mail"),
        "exact:phone": _t("手机号相同", "Same phone"),
        "exact:email+phone": _t("邮箱与手机号相同", "Same e-mail and phone"),
        "exact:customer_ref+email": _t("客户编号与邮箱相同", "Same reference and e-mail"),
        "exact:customer_ref+phone": _t("客户编号与手机号相同", "Same reference and phone"),
        "exact:customer_ref+email+phone": _t("客户编号、邮箱与手机号相同", "Same reference, e-mail and phone"),
    },
    "entity": {
        "customers": _t("客户", "Customers"),
        "leads": _t("线索", "Leads"),
        "lead_events": _t("线索阶段事件", "Lead stage events"),
        "orders": _t("订单", "Orders"),
        "interactions": _t("互动", "Interactions"),
        "contracts": _t("合同", "Contracts"),
        "marketing_spend": _t("营销花费", "Marketing spend"),
    },
    "source_kind": {
        "csv": _t("CSV 文件", "CSV files"),
        "excel": _t("Excel 文件", "Excel files"),
        "parquet": _t("Parquet 文件", "Parquet files"),
        "json": _t("JSON 文件", "JSON files"),
        "demo": _t("演示数据", "Demo data"),
        "postgres": _t("PostgreSQL 数据库", "PostgreSQL"),
        "mysql": _t("MySQL 数据库", "MySQL"),
        "http": _t("HTTP 接口", "HTTP API"),
        "drop_folder": _t("投放文件夹", "Drop folder"),
    },
    # the demo's source names in English; in Chinese a source is called by its configured title
    "source": {
        "crm": _t("CRM", "CRM"),
        "erp": _t("ERP", "ERP"),
        "web_forms": _t("官网表单", "Web forms"),
        "wechat": _t("微信", "WeChat"),
        "call_center": _t("呼叫中心", "Call center"),
        "pos": _t("门店 POS", "Store POS"),
        "purchased_leads": _t("外购线索", "Purchased leads"),
        "trade_show": _t("展会登记", "Trade shows"),
        "marketing": _t("营销投放", "Marketing spend"),
    },
    "status": {  # a refresh's outcome and a source's state
        "published": _t("已发布", "Published"),
        "quarantined": _t("已隔离", "Quarantined"),
        "published_anyway": _t("强制发布", "Published anyway"),
        "discarded": _t("已丢弃", "Discarded"),
        "interrupted": _t("已中断", "Interrupted"),
        "failed": _t("失败", "Failed"),
        "ok": _t("正常", "OK"),
        "fresh": _t("最新", "Fresh"),
        "stale": _t("已过期", "Stale"),
        "never_published": _t("从未发布", "Never published"),
    },
    "classification": {
        "master": _t("主数据", "Master data"),
        "transaction": _t("交易数据", "Transactions"),
        "behaviour": _t("行为数据", "Behaviour"),
        "cost": _t("成本数据", "Cost"),
        "external": _t("外部数据", "External"),
    },
    "region": {},  # the demo's regions are written in Chinese already; a company may code its own
    "industry": {},  # a customer's industry as its systems write it (the demo's in Chinese: [labels.industry])
    "source_owner": {},  # the team a source's config names as its owner (the catalog's 负责人), as configured
    "campaign": {  # campaigns are names already; the facts write a lead's or a cost's missing campaign as ""
        "": _t("（无市场活动）", "(no campaign)"),
    },
}
DIMENSIONS: tuple[str, ...] = tuple(VALUES)  # config.py's LABEL_DIMENSIONS names the same (a test holds it)


@dataclass(frozen=True)
class ValueLabels:
    """The built-in dictionary with a company's own labels over it (theirs win): ``custom`` is
    ``Settings.label_texts()``, its ``[labels]`` and its sources' titles."""

    custom: Mapping[str, Mapping[str, Text]] = field(default_factory=dict)

    def label(self, dimension: str, code: object, lang: str) -> str:
        """``code``'s label in ``lang``: the company's, the built-in one, else the code itself; "—" for none
        (an empty code too, unless the dimension names it)."""
        if code is None:
            return "—"
        key = str(code)
        for table in (self.custom.get(dimension, {}), VALUES.get(dimension, {})):
            text = table.get(key, {}).get(lang)
            if text:
                return text
        return key or "—"

    def table(self, dimension: str, lang: str, codes: Iterable[str] = ()) -> dict[str, str]:
        """code → label for every code this dimension names (and ``codes``), for a vectorised replace."""
        known = {*VALUES.get(dimension, {}), *self.custom.get(dimension, {}), *codes}
        return {c: self.label(dimension, c, lang) for c in known}


BUILT_IN = ValueLabels()


def untranslated(lang: str) -> dict[str, list[str]]:
    """Per dimension, the built-in codes without a label in ``lang`` (a test keeps this empty)."""
    return {d: [c for c, text in v.items() if not text.get(lang)] for d, v in VALUES.items()}
