"""The ATLAS terminal console (Textual).

`console.app.create_app` builds the app and `console.app.run_console` runs it in
the current terminal. Data flows one way: a `ConsoleSource` (`console.source`;
`console.local_source` for the store, `console.remote_source` for a daemon's API)
read in one worker thread, display models
(`console.presentation`), then the panes and widgets. Importing this package
imports nothing else, so `atlas` subcommands that do not open the console stay fast.
"""
