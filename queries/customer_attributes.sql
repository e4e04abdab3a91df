-- name: customer_attributes
-- description: Every value the sources give for one customer's attributes, with provenance (source, snapshot, record); chosen marks the surviving value, conflict an attribute the sources disagree on.
-- params: customer_key:str?, attribute:str?
-- columns: attribute, value, chosen, conflict, source_system, snapshot_id, source_record_id, seen_at, sources, records
SELECT attribute, value, chosen, conflict, source_system, snapshot_id, source_record_id, seen_at, sources, records
FROM customer_attributes
WHERE ($customer_key IS NULL OR customer_key = $customer_key)
  AND ($attribute IS NULL OR attribute = $attribute)
ORDER BY customer_key, attribute, chosen DESC, seen_at DESC NULLS LAST
LIMIT 1000
