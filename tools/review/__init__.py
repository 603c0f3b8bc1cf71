"""`make review`: what a change does to each environment, as Markdown for a pull-request comment."""
