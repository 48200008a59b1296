from finops.common.runner import serve
from finops.ingest.app import create_app
from finops.ingest.settings import IngestSettings

if __name__ == "__main__":
    serve(create_app, IngestSettings)
