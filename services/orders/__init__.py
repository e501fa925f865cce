"""The orders service: orders, products, line items and their commerce satellites."""
