"""`make promote FROM=dev TO=stage`: move a tested build to the next environment as one reviewed commit."""
