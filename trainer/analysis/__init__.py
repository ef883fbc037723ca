"""The science on a sweep's records, torch-free: accuracy, B_crit, B_simple, scaling, the answer."""
