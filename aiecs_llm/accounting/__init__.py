"""Accounting: what calls cost and who may spend what (pricing, budgets, the usage ledger,
metrics, alerts, reports) and the response cache that saves paying twice.
"""
