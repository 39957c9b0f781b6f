"""toolkit's Emperor: one real `uwsgi --ini` per config file, spoken to over its protocol.

Its modules write `TYPE_CHECKING = False` (mypy reads the name as it reads typing's) and
keep their Protocols under it: importing typing costs the Emperor 0.5 MB of resident
memory, measured, for names only the type checker needs."""
