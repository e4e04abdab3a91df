-- name: customer_search
-- description: Golden customers matching a search (without q: those with the highest lifetime revenue): customer key, phone in any format (digits), email, name (exact, pinyin, one character off), company; best matches first.
-- params: q:str?, digits:str?, pinyin:str?, limit:int?
-- columns: customer_key, name, phone, email, company, city, owner, lifecycle_stage, score
WITH scored AS (
    SELECT customer_key, lifetime_revenue,
        CASE
            WHEN $q IS NULL THEN 1
            WHEN lower(customer_key) = lower(trim($q)) THEN 100
            WHEN phone = $digits OR email = lower($q) THEN 95
            WHEN name = $q THEN 90
            WHEN name_pinyin = $pinyin THEN 80
            WHEN company = $q THEN 78
            WHEN length($digits) >= 4 AND contains(phone, $digits) THEN 75
            -- a typo: one character off in a short (Chinese) name, two in a longer one
            WHEN length(name) = length($q) AND length($q) >= 2
                 AND levenshtein(name, $q) <= CASE WHEN length($q) <= 4 THEN 1 ELSE 2 END THEN 70
            WHEN length($q) >= 2 AND contains(company, $q) THEN 65
            WHEN length($pinyin) >= 4 AND jaro_winkler_similarity(name_pinyin, $pinyin) >= 0.93 THEN 60
            WHEN length($q) >= 6 AND contains($q, '@') AND levenshtein(email, lower($q)) <= 2 THEN 60
            ELSE 0
        END AS score
    FROM customer_index
),
other AS (  -- a phone or email of any linked record, not only the surviving one (sorted by value)
    SELECT customer_key, 85 AS score FROM customer_lookup WHERE attribute = 'phone' AND value = $digits
    UNION ALL
    SELECT customer_key, 85 AS score FROM customer_lookup WHERE attribute = 'email' AND value = lower($q)
),
top AS (  -- the best matches of the scan, cut before the lookup's matches join them
    SELECT customer_key, score FROM scored WHERE score > 0
    ORDER BY score DESC, lifetime_revenue DESC, customer_key
    LIMIT coalesce($limit, 20)
),
best AS (
    SELECT customer_key, max(score) AS score FROM (FROM top UNION ALL FROM other) GROUP BY customer_key
)
SELECT s.customer_key, s.name, s.phone, s.email, s.company, s.city, s.owner, s.lifecycle_stage, b.score
FROM best AS b JOIN customer_index AS s USING (customer_key)
ORDER BY b.score DESC, s.lifetime_revenue DESC, s.customer_key
LIMIT coalesce($limit, 20)
