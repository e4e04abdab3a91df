-- name: identity_conflicts
-- description: Golden customers whose sources disagree about a phone, email or name, with masked examples.
-- params: field:str?, conflicts_only:int?, limit:int?
-- columns: customer_key, field, n_sources, n_values, conflict, examples
-- One row per golden customer and field given by two or more sources (only valid phones and emails;
-- names compared without spaces and case); conflict when the values differ. conflicts_only = 1 keeps
-- the conflicts. For conflicts only: n_sources, and examples ("source: masked value" per value).
SELECT customer_key, field, n_sources, n_values, conflict, examples
FROM identity_consistency
WHERE ($field IS NULL OR field = $field)
  AND (coalesce($conflicts_only, 0) = 0 OR conflict)
ORDER BY conflict DESC, n_values DESC, n_sources DESC NULLS LAST, field, customer_key
LIMIT coalesce($limit, 200)
