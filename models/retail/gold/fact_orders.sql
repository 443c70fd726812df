WITH paid AS (
    SELECT order_id, SUM(amount) AS paid_amount
    FROM {{ ref('silver_payments') }}
    GROUP BY order_id
)
SELECT
    o.order_id,
    o.customer_id,
    o.product_id,
    p.category,
    o.quantity,
    o.unit_price,
    {{ line_total('o.quantity', 'o.unit_price') }} AS order_total,
    {{ money('COALESCE(pd.paid_amount, 0)') }} AS paid_amount,
    COALESCE(pd.paid_amount, 0) >= {{ line_total('o.quantity', 'o.unit_price') }} AS is_paid,
    o.status,
    o.ordered_at,
    o.order_date
FROM {{ ref('silver_orders') }} o
LEFT JOIN {{ ref('dim_product') }} p ON p.product_id = o.product_id
LEFT JOIN paid pd ON pd.order_id = o.order_id
