from model.cli import run

run()
