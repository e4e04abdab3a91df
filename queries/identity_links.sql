-- name: identity_links
-- description: Which golden customer (customer_key) each source record belongs to, by which rule, and how sure (confidence: 1 for exact rules and overrides, the match probability for a probabilistic link).
-- params: source_system:str?, customer_key:str?
-- columns: source_system, source_record_id, record_kind, customer_key, match_rule, confidence
SELECT source_system, source_record_id, record_kind, customer_key, match_rule, confidence
FROM identity_links
WHERE ($source_system IS NULL OR source_system = $source_system)
  AND ($customer_key IS NULL OR customer_key = $customer_key)
ORDER BY customer_key, source_system, source_record_id
