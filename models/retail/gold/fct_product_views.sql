SELECT event_id, session_id, customer_id, product_id, event_type, event_time, event_date
FROM {{ ref('silver_clickstream') }}
WHERE event_type IN ('product_view', 'add_to_cart')
    AND product_id IS NOT NULL
