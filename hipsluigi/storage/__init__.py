"""Everything on disk: where each artifact lives (:mod:`.layout`), how each is written and read
(:mod:`.artifacts`), and atomic writes (:mod:`.atomic`)."""
