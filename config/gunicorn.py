"""gunicorn settings for `make demo` (run_stack) and production: `gunicorn -c config/gunicorn.py config.wsgi`.

The access log leaves out query strings and the Referer (which carries the previous page's query
string): the OAuth callback's `code` and `state` and the search boxes' client names travel
there, and ADR 0004 promises they never reach a log (issue 12). Method, path, status, size and
duration are enough to follow a request; the path holds only ids.
"""

accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
