from finops.common.runner import serve
from finops.optimizer.app import create_app
from finops.optimizer.settings import OptimizerSettings

if __name__ == "__main__":
    serve(create_app, OptimizerSettings)
