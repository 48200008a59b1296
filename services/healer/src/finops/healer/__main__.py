from finops.common.runner import serve
from finops.healer.app import create_app
from finops.healer.settings import HealerSettings

if __name__ == "__main__":
    serve(create_app, HealerSettings)
