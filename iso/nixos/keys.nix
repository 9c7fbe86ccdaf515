# The public key lines of an authorized_keys file's text: blank lines and comments dropped.
text:
builtins.filter
  (line: builtins.isString line && builtins.match "[[:space:]]*(#.*)?" line == null)
  (builtins.split "\n" text)
