-- name: filter_options
-- description: The values the filter bar offers: the leads' distinct channels, regions, owners and campaigns.
-- params: channel:str?
-- columns: kind, value
-- With a channel, only that channel's campaigns are offered. Empty values are left out (a lead
-- without a region is still counted under "all regions").
WITH options AS (
    SELECT DISTINCT 'channel' AS kind, channel AS value FROM lead_facts
    UNION ALL
    SELECT DISTINCT 'region', region FROM lead_facts
    UNION ALL
    SELECT DISTINCT 'owner', owner FROM lead_facts
    UNION ALL
    SELECT DISTINCT 'campaign', campaign FROM lead_facts WHERE $channel IS NULL OR channel = $channel
)
SELECT kind, value
FROM options
WHERE value IS NOT NULL AND trim(value) <> ''
ORDER BY kind, value
