"""Carrying out the consequences of final states: the transactional outbox (`outbox`),
the worker that delivers one message at a time (`worker`), the executors that
carry out approved actions (`executors`) and the execution record (`execution`)."""
