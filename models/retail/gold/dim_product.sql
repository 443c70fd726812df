-- The catalogue as the warehouse shows it. A Jinja template:
-- `dag compile dim_product` prints it rendered.
SELECT
    p.product_id,
    p.name,
    p.category,
    p.list_price,
    {{ price_band('p.list_price', var('budget_below', 50), var('premium_from', 150)) }} AS price_band
FROM {{ ref('silver_products') }} p
