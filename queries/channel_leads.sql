-- name: channel_leads
-- description: The leads behind a channel or campaign, newest first (phones masked by the data layer for masked roles).
-- params: start:date?, end:date?, channel:str?, region:str?, owner:str?, campaign:str?, limit:int?
-- columns: lead_id, created_at, channel, campaign, name, phone, region, owner, furthest_stage, won_amount, consent
-- consent: marketing consent, yes, no or unknown: no when the lead or its golden customer said no on any record
-- (the reports leave those out of their lists), yes when either said yes, else unknown.
SELECT f.* EXCLUDE (source_system),
       CASE WHEN g.marketing_consent = false OR ld.said_no THEN 'no'
            WHEN g.marketing_consent OR ld.said_yes THEN 'yes'
            ELSE 'unknown' END AS consent
FROM (
    SELECT
        lead_id,
        created_at,
        channel,
        campaign,
        name,
        phone,
        region,
        owner,
        CASE WHEN won_at IS NOT NULL THEN 'won'
             WHEN lost_at IS NOT NULL THEN 'lost'
             WHEN opportunity_at IS NOT NULL THEN 'opportunity'
             WHEN sql_at IS NOT NULL THEN 'sql'
             WHEN mql_at IS NOT NULL THEN 'mql'
             ELSE 'lead' END AS furthest_stage,
        won_amount,
        source_system
    FROM filtered_leads($start, $end, $channel, $region, $owner, $campaign)
    ORDER BY created_at DESC, lead_id
    LIMIT coalesce($limit, 500)
) AS f
LEFT JOIN identity_links AS l
    ON l.record_kind = 'lead' AND l.source_system = f.source_system AND l.source_record_id = f.lead_id
LEFT JOIN customer_golden AS g ON g.customer_key = l.customer_key
LEFT JOIN (
    SELECT source_system, lead_id, bool_or(NOT marketing_consent) AS said_no, bool_or(marketing_consent) AS said_yes
    FROM leads WHERE marketing_consent IS NOT NULL GROUP BY ALL
) AS ld ON ld.source_system = f.source_system AND ld.lead_id = f.lead_id
ORDER BY f.created_at DESC, f.lead_id
