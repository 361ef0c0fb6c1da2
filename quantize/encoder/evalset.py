"""Built-in in-domain texts for the encoder gates and the default calibration set.

The gates compare INT8 against FP32 on the kind of text the box actually embeds: short
clinical statements, in English and in Chinese. Calibration texts are kept separate from the
gate texts so that a static scheme is never scored on the data it was calibrated with.
"""

from __future__ import annotations

GATE_SENTENCES: tuple[str, ...] = (
    "The patient was given 2 g of cefazolin intravenously 30 minutes before the skin incision.",
    "Laparoscopic cholecystectomy was converted to an open procedure because of dense adhesions.",
    "Postoperative nausea and vomiting were treated with ondansetron 4 mg.",
    "Blood pressure dropped to 82/45 mmHg after induction of anaesthesia.",
    "The surgical team confirmed the patient's identity, site and procedure during the time-out.",
    "Intra-abdominal pressure was kept at 12 mmHg throughout the pneumoperitoneum.",
    "A drain was placed in the subhepatic space and fixed to the skin.",
    "The sponge and instrument counts were correct at closure.",
    "Estimated blood loss was 150 mL; no transfusion was required.",
    "The patient has a known allergy to penicillin and developed a rash in 2019.",
    "Thromboprophylaxis with enoxaparin 40 mg daily starts six hours after surgery.",
    "Surgical smoke reduced visibility, so the assistant opened the insufflation vent.",
    "Frozen section showed a benign serous cystadenoma of the left ovary.",
    "Her HbA1c was 8.2 %, so the elective hernia repair was postponed.",
    "The ureter was identified and protected before the uterine arteries were ligated.",
    "Remove the urinary catheter on the first postoperative day if the patient is mobile.",
    "患者术前30分钟静脉输注头孢唑林2克预防感染。",
    "腹腔镜胆囊切除术因致密粘连中转开腹。",
    "术后恶心呕吐，给予昂丹司琼4毫克静脉注射。",
    "麻醉诱导后血压降至82/45毫米汞柱。",
    "手术团队在切皮前再次核对患者身份、手术部位和术式。",
    "气腹压力全程维持在12毫米汞柱。",
    "于肝下间隙放置引流管并固定于皮肤。",
    "关腹前纱布和器械清点无误。",
    "术中出血约150毫升，未输血。",
    "患者青霉素过敏，2019年曾出现皮疹。",
    "术后6小时开始皮下注射依诺肝素40毫克预防血栓。",
    "电刀烟雾影响视野，助手打开了排气阀。",
    "术中冰冻病理提示左侧卵巢良性浆液性囊腺瘤。",
    "糖化血红蛋白8.2%，择期疝修补术推迟。",
    "结扎子宫动脉前先辨认并保护输尿管。",
    "若患者可下床活动，术后第一天拔除导尿管。",
)

# Retrieval agreement: every query is scored against every document; INT8 must rank the same
# top 5 as FP32. Documents mix both languages so that cross-lingual ranking is exercised too.
RETRIEVAL_DOCUMENTS: tuple[str, ...] = GATE_SENTENCES
RETRIEVAL_QUERIES: tuple[str, ...] = (
    "antibiotic prophylaxis before incision",
    "conversion from laparoscopy to open surgery",
    "how to treat nausea after an operation",
    "hypotension during anaesthesia",
    "surgical safety checklist time-out",
    "pneumoperitoneum pressure setting",
    "penicillin allergy history",
    "when to start anticoagulation after surgery",
    "术前预防性使用抗生素",
    "术后恶心呕吐怎么处理",
    "血栓预防用药时间",
    "手术烟雾影响视野",
)

# Reranker agreement: each query has candidate passages; INT8 must keep the same top-1 and a
# Kendall tau close to FP32's ordering.
RERANK_QUERIES: tuple[str, ...] = RETRIEVAL_QUERIES

CALIBRATION_SENTENCES: tuple[str, ...] = (
    "The anaesthetist documented an ASA physical status of II.",
    "Trocars were inserted under direct vision at the umbilicus and in both flanks.",
    "The appendix was inflamed but not perforated and was removed with an endoscopic stapler.",
    "Oxygen saturation remained above 95 % during the whole procedure.",
    "Paracetamol 1 g every six hours was prescribed for pain.",
    "The specimen was retrieved in a bag through the umbilical port.",
    "A nasogastric tube was inserted to decompress the stomach.",
    "Heart rate rose to 118 beats per minute during carbon dioxide insufflation.",
    "The fascia was closed with a running absorbable suture.",
    "The patient was transferred to the recovery room awake and breathing spontaneously.",
    "Intraoperative cholangiography showed no common bile duct stones.",
    "The team paused because the video tower lost its signal for ten seconds.",
    "麻醉医师记录ASA分级为II级。",
    "在直视下于脐部及两侧腹部置入戳卡。",
    "阑尾充血水肿但未穿孔，用腔镜切割闭合器切除。",
    "手术全程血氧饱和度维持在95%以上。",
    "术后予对乙酰氨基酚1克每6小时一次镇痛。",
    "标本装袋后经脐部切口取出。",
    "留置胃管行胃肠减压。",
    "二氧化碳气腹时心率升至每分钟118次。",
    "可吸收线连续缝合筋膜层。",
    "患者清醒、自主呼吸良好，转入复苏室。",
    "术中胆道造影未见胆总管结石。",
    "视频塔信号中断十秒，团队暂停手术。",
)
