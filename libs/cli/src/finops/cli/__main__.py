from finops.cli.main import app

app(prog_name="finops")
