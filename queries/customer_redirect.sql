-- name: customer_redirect
-- description: Where a customer key that no longer exists went: the key its records have now, since its customer merged into another (old bookmarks and lists still open the customer). Without customer_key: every redirect, newest first.
-- params: customer_key:str?
-- columns: old_key, customer_key, merged_at
SELECT old_key, customer_key, merged_at
FROM customer_redirects
WHERE $customer_key IS NULL OR old_key = $customer_key
ORDER BY merged_at DESC, old_key
LIMIT 1000
