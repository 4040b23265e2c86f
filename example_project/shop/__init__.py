"""The example shop: categories, products and orders."""
