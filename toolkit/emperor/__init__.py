"""toolkit's Emperor: one real `uwsgi --ini` per config file, spoken to over its protocol."""
