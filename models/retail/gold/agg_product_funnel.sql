WITH seen AS (
    SELECT
        product_id,
        {{ count_where("event_type = 'product_view'") }} AS views,
        {{ count_where("event_type = 'add_to_cart'") }} AS carts
    FROM {{ ref('fct_product_views') }}
    GROUP BY product_id
),
sold AS (
    SELECT
        product_id,
        COUNT(*) AS orders,
        SUM(quantity) AS units,
        SUM(order_total) AS revenue
    FROM {{ ref('fact_orders') }}
    WHERE status <> 'cancelled'
    GROUP BY product_id
)
SELECT
    d.product_id,
    d.name,
    COALESCE(v.views, 0) AS views,
    COALESCE(v.carts, 0) AS carts,
    COALESCE(s.orders, 0) AS orders,
    COALESCE(s.units, 0) AS units,
    {{ money('COALESCE(s.revenue, 0)') }} AS revenue
FROM {{ ref('dim_product') }} d
LEFT JOIN seen v ON v.product_id = d.product_id
LEFT JOIN sold s ON s.product_id = d.product_id
