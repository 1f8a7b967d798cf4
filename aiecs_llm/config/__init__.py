"""Configuration: settings from arguments, the config file and the environment, and the secrets
they carry.
"""
