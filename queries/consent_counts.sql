-- name: consent_counts
-- description: Marketing consent per source (its customer records) and overall (golden customers, source_system = '(all)'): how many said yes, no, or nothing readable (unknown).
-- params:
-- columns: source_system, customers, consent_yes, consent_no, consent_unknown
-- Overall, a person counts once, by their golden consent: any record saying no wins, then any yes.
SELECT * FROM (
    SELECT source_system, count(*) AS customers,
           count(*) FILTER (WHERE marketing_consent) AS consent_yes,
           count(*) FILTER (WHERE NOT marketing_consent) AS consent_no,
           count(*) FILTER (WHERE marketing_consent IS NULL) AS consent_unknown
    FROM customers
    GROUP BY source_system
    ORDER BY source_system
)
UNION ALL
SELECT '(all)', count(*),
       count(*) FILTER (WHERE marketing_consent),
       count(*) FILTER (WHERE NOT marketing_consent),
       count(*) FILTER (WHERE marketing_consent IS NULL)
FROM customer_golden
