{#- The statuses an order can have; agg_daily_sales.yml declares one
    <status>_orders column for each. -#}
{% set statuses = var('order_statuses', ['placed', 'shipped', 'cancelled']) %}
SELECT
    order_date,
    COUNT(*) AS orders,
    SUM(CASE WHEN status <> 'cancelled' THEN quantity ELSE 0 END) AS units,
    {{ money("SUM(CASE WHEN status <> 'cancelled' THEN order_total ELSE 0 END)") }} AS revenue,
    {{ money('SUM(paid_amount)') }} AS paid_amount,
    {% for s in statuses %}
    {{ count_where("status = '" ~ s ~ "'") }} AS {{ s }}_orders{% if not loop.last %},{% endif %}
    {% endfor %}
FROM {{ ref('fact_orders') }}
GROUP BY order_date
