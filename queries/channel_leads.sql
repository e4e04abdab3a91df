-- name: channel_leads
-- description: The leads behind a channel or campaign, newest first (phones masked by the data layer for masked roles).
-- params: start:date?, end:date?, channel:str?, region:str?, owner:str?, campaign:str?, limit:int?
-- columns: lead_id, created_at, channel, campaign, name, phone, region, owner, furthest_stage, won_amount
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
    won_amount
FROM filtered_leads($start, $end, $channel, $region, $owner, $campaign)
ORDER BY created_at DESC, lead_id
LIMIT coalesce($limit, 500)
