-- name: filter_options
-- description: The values the filter bar offers: the leads' distinct channels, regions, owners and campaigns.
-- params: channel:str?
-- columns: kind, value
-- With a channel, only that channel's campaigns are offered. Empty values are left out (a lead
-- without a region is still counted under "all regions"). filter_values is built at refresh.
SELECT DISTINCT kind, value
FROM filter_values
WHERE value IS NOT NULL AND trim(value) <> ''
  AND (kind <> 'campaign' OR $channel IS NULL OR channel = $channel)
ORDER BY kind, value
