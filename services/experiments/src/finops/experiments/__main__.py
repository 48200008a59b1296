from finops.common.runner import serve
from finops.experiments.app import create_app
from finops.experiments.settings import ExperimentsSettings

if __name__ == "__main__":
    serve(create_app, ExperimentsSettings)
