from glob import glob

from setuptools import find_packages, setup

PACKAGE = "translocnet_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/models", glob("models/*.pt") + glob("models/*.json")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="translocnet_ros maintainers",
    maintainer_email="maintainers@translocnet.dev",
    description="LiDAR-to-aerial-imagery localization (TransLocNet) for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "translocnet = translocnet_ros.cli:main",
            "localizer = translocnet_ros.ros.localizer_node:main",
        ],
    },
)
