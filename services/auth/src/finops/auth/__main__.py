from finops.auth.app import create_app
from finops.auth.settings import AuthSettings
from finops.common.runner import serve

if __name__ == "__main__":
    serve(create_app, AuthSettings)
