"""Administration: users, roles and the jurisdiction tree."""
