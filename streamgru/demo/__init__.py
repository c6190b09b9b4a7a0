"""``streamgru demo``: a bundled MIT-BIH excerpt (:mod:`.record`) through the daemon (:mod:`.command`)."""
