"""`nsplayer stage`: a speech service for a cast of characters over WebSocket and REST.

protocol.py parses and checks what clients send; cast.py keeps each subject's queue of
utterances and their events over the engine; app.py is the Starlette app; service.py runs
it under uvicorn until Ctrl-C/SIGTERM and eases every face out before it returns.
"""
