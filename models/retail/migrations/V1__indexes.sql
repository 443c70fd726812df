-- The retail pipeline's own warehouse migration, applied once after
-- `dag migrate` created the tables: lookups of a customer's orders.
CREATE INDEX IF NOT EXISTS fact_orders_customer_id_idx ON gold.fact_orders (customer_id);
