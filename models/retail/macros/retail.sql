{# Macros of the retail pipeline: every SQL model can call them by name. #}

{# An amount in EUR as the warehouse keeps it. #}
{% macro money(expr) -%}
CAST({{ expr }} AS DECIMAL(14,2))
{%- endmacro %}

{# What an order line is worth: quantity times unit price. #}
{% macro line_total(quantity, unit_price) -%}
{{ money(quantity ~ ' * ' ~ unit_price) }}
{%- endmacro %}

{# How many rows of the group satisfy a condition. #}
{% macro count_where(condition) -%}
SUM(CASE WHEN {{ condition }} THEN 1 ELSE 0 END)
{%- endmacro %}

{# A product's price band: budget below `budget_below`, premium from
   `premium_from`, standard in between. #}
{% macro price_band(price, budget_below, premium_from) -%}
CASE
        WHEN {{ price }} < {{ budget_below }} THEN 'budget'
        WHEN {{ price }} < {{ premium_from }} THEN 'standard'
        ELSE 'premium'
    END
{%- endmacro %}
