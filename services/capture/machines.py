"""The machine catalogue (capture-and-platform.md A1, A2): the modeler types behind the reference's 23
`capture_type_name` values, as platform data.

How it reaches every bureau: the capture service writes each entry as a `modeler-type` (and each of its capture kinds
as a `capture-type`) with *no bureau*, under an id derived from the entry's manufacturer and name, when it starts
(`Capture.seed_platform`). The read side shows bureau-less documents of these resources to every caller
(shared.access.PLATFORM_RESOURCES), so a bureau created tomorrow sees the same catalogue without any per-bureau
seeding. Editing an entry here changes the stored type on the next start (a `ModelerTypeUpdated` event); removing one
leaves the stored type alone (modelers may point at it).

Every machine named here is a product its manufacturer sells or sold under that name; where the reference names a
capture kind but not its machine (`catex.*`), the entry says so instead of guessing a product.
"""
from dataclasses import dataclass
from uuid import NAMESPACE_URL, uuid5

# seconds between two captures of a kind Echo should use by default (A2 `interval`): states change by the minute,
# job lists and logs by the job, histories by the day
STATUS, JOBS, HISTORY = 60, 300, 86400


def interval_of(capture_type):
    if capture_type.endswith(".historic"):
        return HISTORY
    if capture_type.endswith((".log", ".jobs")):
        return JOBS
    return STATUS


@dataclass(frozen=True)
class Machine:
    manufacturer: str
    name: str
    technology: str  # one of the catalogue's 19 `technology` choices
    capture_types: tuple
    description: str

    @property
    def id(self):
        return uuid5(NAMESPACE_URL, f"stratum:modeler-type:{self.manufacturer}:{self.name}")

    def fields(self):
        return {"name": self.name, "manufacturer": self.manufacturer, "technology": self.technology,
                "description": self.description,
                "capture_types": [{"capture_type": kind} for kind in self.capture_types]}

    def capture_type_id(self, kind):
        return uuid5(NAMESPACE_URL, f"stratum:capture-type:{self.manufacturer}:{self.name}:{kind}")

    def capture_type_fields(self, kind):
        return {"capture_type": kind, "interval": interval_of(kind), "modeler_type": f"/modeler-type/{self.id}/"}


_EOS = ("eos.modeler.log", "eos_connect.modeler.log", "eosconnet_v6_http_modeler.jobs")
_STRATASYS = ("stratasys.connectivity.modeler.status", "stratasys.connectivity.modeler.historic")
_RENISHAW = ("renishaw.modeler.log", "renishaw.modeler.historic")

MACHINES = (
    Machine("Arcam (GE Additive)", "Arcam EBM A2X", "EBM", ("arcam.job.log",),
            "Electron beam melting system for titanium and nickel alloys; Echo reads its job log."),
    Machine("Arcam (GE Additive)", "Arcam EBM Q20plus", "EBM", ("arcam.job.log",),
            "Electron beam melting system for large titanium parts; Echo reads its job log."),
    Machine("CATEX", "CATEX-connected machine", "NA", ("catex.modeler.jobs", "catex.modeler.status"),
            "The reference names the CATEX job list and status captures but not the machines behind them; "
            "use this type for a machine Echo reaches through a CATEX connection."),
    Machine("Stratasys", "Objet500 Connex3", "Polyjet", ("connex.modeler.log",),
            "Multi-material PolyJet printer; Echo reads its job log."),
    Machine("EOS", "EOS M 290", "DMLS", _EOS, "Metal laser powder bed fusion system (EOSTATE / EOSCONNECT)."),
    Machine("EOS", "EOS M 400", "DMLS", _EOS, "Large-frame metal laser powder bed fusion system (EOSCONNECT)."),
    Machine("EOS", "EOS P 396", "SLS", _EOS, "Polymer laser sintering system (EOSCONNECT)."),
    Machine("HP", "HP Jet Fusion 5200", "MJF", ("hp.modeler.status",),
            "Multi Jet Fusion production printer; Echo polls its status."),
    Machine("HP", "HP Jet Fusion 4200", "MJF", ("hp.modeler.status",),
            "Multi Jet Fusion printer; Echo polls its status."),
    Machine("SLM Solutions", "SLM 280", "SLM_DMLS", ("slm.modeler.status",),
            "Selective laser melting system; Echo polls its status."),
    Machine("SLM Solutions", "SLM 500", "SLM_DMLS", ("slm.modeler.status",),
            "Quad-laser selective laser melting system; Echo polls its status."),
    Machine("3D Systems", "ProJet 660Pro", "Binder Jet", ("projet660.modeler.log",),
            "Full-colour ColorJet (binder jetting) printer; Echo reads its job log."),
    Machine("UltiMaker", "Ultimaker S5", "FDM", ("ultimaker.modeler.log",),
            "Dual-extrusion FFF printer; Echo reads the print jobs of its Cura Connect cluster."),
    Machine("UltiMaker", "Ultimaker S3", "FDM", ("ultimaker.modeler.log",),
            "Dual-extrusion FFF printer; Echo reads the print jobs of its Cura Connect cluster."),
    Machine("UltiMaker", "Ultimaker 3", "FDM", ("ultimaker.modeler.log",),
            "Dual-extrusion FFF printer; Echo reads the print jobs of its Cura Connect cluster."),
    Machine("Stratasys", "F370", "FDM", _STRATASYS, "FDM printer reached through Stratasys connectivity."),
    Machine("Stratasys", "Fortus 450mc", "FDM", _STRATASYS, "Production FDM printer reached through Stratasys "
            "connectivity."),
    Machine("Carbon", "Carbon M2", "CLIP", ("carbon3D.modeler.status",),
            "Digital Light Synthesis (CLIP) printer; Echo polls its status."),
    Machine("Carbon", "Carbon L1", "CLIP", ("carbon3D.modeler.status",),
            "Large-format Digital Light Synthesis (CLIP) printer; Echo polls its status."),
    Machine("Formlabs", "Form 3+", "SLA", ("formlabs.modeler.status",),
            "Low Force Stereolithography printer; Echo reads its status from Formlabs' PreFormServer (Local API)."),
    Machine("Formlabs", "Form 4", "SLA", ("formlabs.modeler.status",),
            "Masked stereolithography printer; Echo reads its status from Formlabs' PreFormServer (Local API)."),
    Machine("Formlabs", "Form 3L", "SLA", ("formlabs.modeler.status",),
            "Large-format stereolithography printer; Echo reads its status from PreFormServer (Local API)."),
    Machine("Formlabs", "Fuse 1+ 30W", "SLS", ("formlabs.modeler.status",),
            "Benchtop selective laser sintering printer; Echo reads its status from PreFormServer (Local API)."),
    Machine("Markforged", "Mark Two", "FDM", ("markforged.modeler.status",),
            "Continuous-fibre composite printer; Echo reads its status from Eiger."),
    Machine("Markforged", "X7", "FDM", ("markforged.modeler.status",),
            "Industrial continuous-fibre composite printer; Echo reads its status from Eiger."),
    Machine("Markforged", "Metal X", "FDM", ("markforged.modeler.status",),
            "Bound-metal printer; Echo reads its status from Eiger."),
    Machine("Renishaw", "RenAM 500Q", "SLM_DMLS", _RENISHAW, "Four-laser metal powder bed fusion system."),
    Machine("Renishaw", "AM400", "SLM_DMLS", _RENISHAW, "Metal powder bed fusion system."),
    Machine("Photocentric", "Liquid Crystal Magna", "LCD SLA", ("photocentric.modeler.status",),
            "Large-format LCD resin printer; Echo polls its status."),
    Machine("Photocentric", "JENI", "LCD SLA", ("photocentric_jeni.modeler.status",),
            "Automated cluster of LCD resin printing and post-processing beds (capture-and-platform.md A10)."),
    Machine("Bambu Lab", "X1 Carbon", "FDM", ("bambu.modeler.status",),
            "CoreXY FFF printer; reports its state as MQTT `print` messages (push_status)."),
    Machine("Bambu Lab", "P1S", "FDM", ("bambu.modeler.status",),
            "CoreXY FFF printer; reports its state as MQTT `print` messages (push_status)."),
    Machine("Bambu Lab", "A1", "FDM", ("bambu.modeler.status",),
            "Bed-slinger FFF printer; reports its state as MQTT `print` messages (push_status)."),
    Machine("Haas Automation", "VF-2", "CNC", ("haas.modeler.status",),
            "Vertical machining centre; its Next Generation Control serves its state over MTConnect."),
    Machine("Haas Automation", "ST-10", "CNC", ("haas.modeler.status",),
            "CNC turning centre; its Next Generation Control serves its state over MTConnect."),
)
