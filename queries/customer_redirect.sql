-- name: customer_redirect
-- description: Where a customer key that no longer exists went: the key its records have now, since its customer merged into another (old bookmarks and lists still open the customer).
-- params: customer_key:str
-- columns: customer_key, merged_at
SELECT customer_key, merged_at
FROM customer_redirects
WHERE old_key = $customer_key
