"""State shared by the replicas of a service through one Redis server: budgets, rate limits,
breakers and key cool-downs, the response cache.
"""
