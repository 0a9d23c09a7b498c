"""Deployment compositions: entry points that wire several services into one process.

Unlike services/, a composition may import more than one service; nothing imports apps/.
"""
