"""The activator: holds requests for endpoints at zero, wakes them, forwards in order.

queueing (pure rules and the held queue), routing (pure: which endpoint, which upstream,
state from an InferenceService), metrics, watch (InferenceService watch in a thread),
proxy (aiohttp handlers), grpc_passthrough, server (`tideserve activator`).
"""
