"""Work items for people: inbox queries, claim/assign, task forms, drafts."""
