"""The read path: the warehouse (role views, named queries), who may see what, customer search and Explore."""
